//! What a fleet run prints: one line per target as it finishes (target, outcome, exit code,
//! duration, its RemoteCommand, reason), a summary, the `-o json|yaml` document, and the exit
//! status. Pure: the watching is in `follow`.

use std::collections::HashMap;

use kube::ResourceExt;
use serde_json::{Value, json};

use crate::api::Phase;
use crate::api::remote_command::RemoteCommand;
use crate::api::remote_command_set::RemoteCommandSet;
use crate::cli::exit;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// Never launched (the run stopped, or was held, first).
    NotStarted,
    /// Launched, but its RemoteCommand is gone (deleted) and the set does not say how it ended.
    Unknown,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed => "Failed",
            Outcome::NotStarted => "NotStarted",
            Outcome::Unknown => "Unknown",
        }
    }
}

/// How one target ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// The target's resource id.
    pub target: String,
    pub outcome: Outcome,
    pub reason: String,
    pub message: String,
    pub exit_code: Option<i32>,
    pub seconds: Option<f64>,
    /// Its RemoteCommand (`kubectl invoke result NAME` prints its output).
    pub remote_command: Option<String>,
    /// The Secret holding its output.
    pub output_secret: Option<String>,
}

impl Line {
    /// The line of a finished child.
    pub fn of(target: &str, rc: &RemoteCommand) -> Line {
        let s = rc.status.clone().unwrap_or_default();
        let seconds = match (&s.start_time, &s.completion_time) {
            (Some(start), Some(end)) => Some(end.0.duration_since(start.0).as_secs_f64().max(0.0)),
            _ => None,
        };
        Line {
            target: target.to_string(),
            outcome: match s.phase {
                Some(Phase::Succeeded) => Outcome::Succeeded,
                _ => Outcome::Failed,
            },
            reason: s.reason.unwrap_or_default(),
            message: s.message.unwrap_or_default(),
            exit_code: s.exit_code,
            seconds,
            remote_command: Some(rc.name_any()),
            output_secret: s.output_secret_name,
        }
    }

    /// The line of a target without a RemoteCommand.
    pub fn without_child(target: &str, outcome: Outcome, reason: &str, message: &str) -> Line {
        Line {
            target: target.to_string(),
            outcome,
            reason: reason.to_string(),
            message: message.to_string(),
            exit_code: None,
            seconds: None,
            remote_command: None,
            output_secret: None,
        }
    }
}

/// What each target is called in the lines: its resource's name, or its whole id when two
/// targets share a name (in other resource groups or subscriptions).
pub struct Labels(HashMap<String, String>);

impl Labels {
    pub fn new(targets: &[String]) -> Labels {
        let short = |id: &str| id.rsplit('/').next().unwrap_or(id).to_string();
        let mut count: HashMap<String, usize> = HashMap::new();
        for t in targets {
            *count.entry(short(t).to_ascii_lowercase()).or_default() += 1;
        }
        Labels(
            targets
                .iter()
                .map(|t| {
                    let name = short(t);
                    let label = match count[&name.to_ascii_lowercase()] {
                        1 => name,
                        _ => t.clone(),
                    };
                    (t.to_ascii_lowercase(), label)
                })
                .collect(),
        )
    }

    pub fn get<'a>(&'a self, target: &'a str) -> &'a str {
        self.0
            .get(&target.to_ascii_lowercase())
            .map(String::as_str)
            .unwrap_or(target)
    }

    /// The width of the target column.
    pub fn width(&self) -> usize {
        self.0.values().map(String::len).max().unwrap_or(0).max(6)
    }
}

pub fn header(width: usize) -> String {
    format!(
        "{:<width$}   {:<10}   {:>4}   {:>8}   {}",
        "TARGET", "OUTCOME", "EXIT", "DURATION", "REMOTECOMMAND   REASON"
    )
}

/// One target's line, in the columns of [`header`].
pub fn text(line: &Line, labels: &Labels, width: usize) -> String {
    let exit = line
        .exit_code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "-".into());
    let duration = line
        .seconds
        .map(|s| format!("{s:.1}s"))
        .unwrap_or_else(|| "-".into());
    let mut why = crate::text::clean(&line.reason, 128);
    if line.outcome != Outcome::Succeeded && !line.message.is_empty() {
        why = format!("{why}: {}", crate::text::clean(&line.message, 200));
    }
    format!(
        "{:<width$}   {:<10}   {exit:>4}   {duration:>8}   {}   {why}",
        labels.get(&line.target),
        line.outcome.as_str(),
        line.remote_command.as_deref().unwrap_or("-"),
    )
}

/// How many lines ended which way.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub succeeded: usize,
    pub failed: usize,
    pub not_started: usize,
    pub unknown: usize,
}

pub fn counts(lines: &[Line]) -> Counts {
    let mut c = Counts::default();
    for l in lines {
        match l.outcome {
            Outcome::Succeeded => c.succeeded += 1,
            Outcome::Failed => c.failed += 1,
            Outcome::NotStarted => c.not_started += 1,
            Outcome::Unknown => c.unknown += 1,
        }
    }
    c
}

/// The last line: the counts, the set's reason, the exit status.
pub fn summary(name: &str, set_reason: &str, lines: &[Line], seconds: f64, code: u8) -> String {
    let c = counts(lines);
    let mut text = format!(
        "{name}: {} targets: {} succeeded, {} failed, {} not started",
        lines.len(),
        c.succeeded,
        c.failed,
        c.not_started
    );
    if c.unknown > 0 {
        text.push_str(&format!(", {} unknown (RemoteCommand gone)", c.unknown));
    }
    text.push_str(&format!(
        " ({}) in {seconds:.1}s; exit status {code}",
        crate::text::clean(set_reason, 128)
    ));
    text
}

/// The exit status of an ended fleet run. `held`: the set stopped on a reason of its own
/// (`InvalidSpec`, `Forbidden`, `TargetNotFound`…) rather than by finishing; only then, and only
/// when no target was launched, is it [`exit::REFUSED`]. A finished run is judged by the set's own
/// counts (which outlive deleted children).
pub fn exit_status(set: &RemoteCommandSet, held: bool, lines: &[Line]) -> u8 {
    let launched = lines.iter().any(|l| l.remote_command.is_some());
    if held && !launched {
        return exit::REFUSED;
    }
    let s = set.status.clone().unwrap_or_default();
    let all_good = if held {
        lines.iter().all(|l| l.outcome == Outcome::Succeeded)
    } else {
        s.failed == 0 && s.not_started == 0 && s.succeeded == s.target_count
    };
    if all_good { 0 } else { exit::TARGETS_FAILED }
}

/// `-o json|yaml`: the run and every target's outcome and where its output is.
pub fn document(set: &RemoteCommandSet, lines: &[Line], code: u8) -> Value {
    let s = set.status.clone().unwrap_or_default();
    let c = counts(lines);
    let targets: Vec<Value> = lines
        .iter()
        .map(|l| {
            json!({
                "target": l.target,
                "outcome": l.outcome.as_str(),
                "reason": l.reason,
                "message": l.message,
                "exitCode": l.exit_code,
                "durationSeconds": l.seconds.map(|s| (s * 1000.0).round() / 1000.0),
                "remoteCommand": l.remote_command,
                "outputSecret": l.output_secret,
            })
        })
        .collect();
    json!({
        "kind": "RemoteCommandSet",
        "name": set.name_any(),
        "namespace": set.namespace(),
        "reason": s.reason,
        "message": s.message,
        "exitStatus": code,
        "targetCount": lines.len(),
        "succeeded": c.succeeded,
        "failed": c.failed,
        "notStarted": c.not_started,
        "targets": targets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(rg: &str, name: &str) -> String {
        format!(
            "/subscriptions/s/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
        )
    }

    fn line(target: &str, outcome: Outcome, child: bool) -> Line {
        let mut l = Line::without_child(target, outcome, "R", "m");
        l.remote_command = child.then(|| "c".into());
        l
    }

    fn set(target_count: i32, succeeded: i32, failed: i32, not_started: i32) -> RemoteCommandSet {
        serde_json::from_value(json!({
            "apiVersion": "kubeinvoke.io/v1alpha1", "kind": "RemoteCommandSet",
            "metadata": {"name": "f"},
            "spec": {"template": {"command": "true"}, "targets": {}},
            "status": {"targetCount": target_count, "succeeded": succeeded, "failed": failed, "notStarted": not_started},
        }))
        .unwrap()
    }

    #[test]
    fn targets_are_named_by_their_resource_unless_two_share_a_name() {
        let targets = [id("a", "prod-1"), id("a", "web"), id("b", "WEB")];
        let labels = Labels::new(&targets);
        assert_eq!(labels.get(&targets[0]), "prod-1");
        assert_eq!(labels.get(&targets[0].to_uppercase()), "prod-1");
        assert_eq!(labels.get(&targets[1]), targets[1]);
        assert_eq!(labels.width(), targets[1].len());
    }

    #[test]
    fn a_line_has_target_outcome_exit_code_duration_and_why() {
        let labels = Labels::new(&[id("a", "prod-1")]);
        let mut l = line(&id("a", "prod-1"), Outcome::Failed, true);
        l.exit_code = Some(3);
        l.seconds = Some(1.25);
        l.reason = "NonZeroExit".into();
        l.message = "exited with 3".into();
        let text = text(&l, &labels, labels.width());
        let cells: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(
            cells[..6],
            ["prod-1", "Failed", "3", "1.2s", "c", "NonZeroExit:"],
            "{text}"
        );
        let header = header(labels.width());
        assert_eq!(
            header.find("OUTCOME"),
            text.find("Failed"),
            "{header}\n{text}"
        );
        let ok = Line {
            outcome: Outcome::Succeeded,
            ..l
        };
        assert!(!super::text(&ok, &labels, 6).contains("exited with"));
    }

    #[test]
    fn exit_status_zero_only_when_every_target_succeeded() {
        let ok = line("t1", Outcome::Succeeded, true);
        let bad = line("t2", Outcome::Failed, true);
        let never = line("t3", Outcome::NotStarted, false);
        assert_eq!(
            exit_status(&set(1, 1, 0, 0), false, std::slice::from_ref(&ok)),
            0
        );
        assert_eq!(exit_status(&set(0, 0, 0, 0), false, &[]), 0);
        assert_eq!(
            exit_status(&set(2, 1, 1, 0), false, &[ok.clone(), bad.clone()]),
            exit::TARGETS_FAILED
        );
        assert_eq!(
            exit_status(&set(2, 1, 0, 1), false, &[ok.clone(), never.clone()]),
            exit::TARGETS_FAILED
        );
        // Held before anything was launched: refused, never ran.
        assert_eq!(exit_status(&set(0, 0, 0, 0), true, &[]), exit::REFUSED);
        assert_eq!(
            exit_status(&set(1, 0, 0, 1), true, std::slice::from_ref(&never)),
            exit::REFUSED
        );
        // Held after launching: some ran, so never 241.
        assert_eq!(
            exit_status(&set(2, 1, 0, 1), true, &[ok, never]),
            exit::TARGETS_FAILED
        );
        // A finished run is judged by the set's counts, which outlive deleted children.
        let gone = line("t4", Outcome::Unknown, false);
        assert_eq!(exit_status(&set(1, 1, 0, 0), false, &[gone]), 0);
    }

    #[test]
    fn the_document_lists_every_target_with_its_output_location() {
        let mut ok = line("t1", Outcome::Succeeded, true);
        ok.output_secret = Some("c-output".into());
        ok.exit_code = Some(0);
        let doc = document(
            &set(2, 1, 0, 1),
            &[ok, line("t2", Outcome::NotStarted, false)],
            exit::TARGETS_FAILED,
        );
        assert_eq!(doc["exitStatus"], 246);
        assert_eq!(doc["targetCount"], 2);
        assert_eq!(doc["notStarted"], 1);
        assert_eq!(doc["targets"][0]["outputSecret"], "c-output");
        assert_eq!(doc["targets"][0]["remoteCommand"], "c");
        assert_eq!(doc["targets"][0]["exitCode"], 0);
        assert_eq!(doc["targets"][1]["outcome"], "NotStarted");
        assert!(doc["targets"][1]["remoteCommand"].is_null());
        let s = summary(
            "f",
            "MaxErrorsExceeded",
            &[line("x", Outcome::Failed, true)],
            2.0,
            246,
        );
        assert!(
            s.contains("1 targets: 0 succeeded, 1 failed, 0 not started"),
            "{s}"
        );
        assert!(
            s.contains("MaxErrorsExceeded") && s.ends_with("exit status 246"),
            "{s}"
        );
    }
}
