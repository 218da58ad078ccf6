//! The metrics as documented (docs/operate.md, "Metrics"), alerted on (the chart's alert rules) and
//! graphed (the chart's dashboard) are the ones the code exports, with the same labels.

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use serde_json::Value;

use super::*;
use crate::azure::credentials::Principal;
use crate::azure::throttle::BucketKey;

const ALERTS: &str = "charts/kubeinvoke/files/alerts.yaml";
const DASHBOARD: &str = "charts/kubeinvoke/dashboards/kubeinvoke.json";
const OPERATE: &str = "docs/operate.md";
/// The runbook address in the rules file, which the chart replaces with its value.
const RUNBOOK_BASE: &str = "https://github.com/kubeinvoke/kubeinvoke/blob/main/docs/operate.md";

fn repo_file(path: &str) -> String {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// What a scrape shows when every family has a series.
fn scrape() -> String {
    let m = Metrics::new();
    m.reconciled("remote_command", Duration::from_millis(1), Some("Retrying"));
    m.outcome("remote_command", "Completed");
    m.response("ManagedClusters_RunCommand", Some(200));
    m.throttled("ManagedClusters_RunCommand");
    m.throttle_wait("ManagedClusters_RunCommand", Duration::from_millis(1));
    m.retry("ManagedClusters_RunCommand", Duration::from_millis(1));
    m.set_leader(true);
    let mut exports = ExportGauges::default();
    exports.count("True", "Exported", Some(60));
    let principal = Principal {
        tenant_id: "t".into(),
        client_id: "c".into(),
    };
    let bucket = BucketLevel {
        key: BucketKey {
            subscription: "s".into(),
            principal,
            kind: OpKind::Read,
        },
        tokens: 1.0,
        paused: false,
    };
    m.render(&StateGauges {
        phases: vec![("Running".into(), 1)],
        buckets: vec![bucket],
        exports,
    })
}

/// Documented name (a counter's `_total` sample, a histogram's family) → (type, label names).
fn exported() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let text = scrape();
    let types: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .collect();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let end = line.find(['{', ' ']).expect("a sample line");
        let sample = &line[..end];
        let (family, kind) = types
            .iter()
            .find(|(family, _)| {
                sample.strip_prefix(**family).is_some_and(|rest| {
                    ["", "_total", "_bucket", "_sum", "_count", "_created"].contains(&rest)
                })
            })
            .unwrap_or_else(|| panic!("{sample} belongs to no # TYPE line"));
        let name = match *kind {
            "counter" => format!("{family}_total"),
            _ => family.to_string(),
        };
        let mut labels = BTreeSet::new();
        if let Some(inner) = line[end..]
            .strip_prefix('{')
            .and_then(|l| l.split_once('}'))
        {
            for pair in inner.0.split(',') {
                labels.insert(pair.split('=').next().unwrap_or_default().to_string());
            }
        }
        labels.remove("le");
        if name == "kubeinvoke_build_info" {
            // Only a build given a revision shows it.
            labels.insert("revision".into());
        }
        out.insert(name, (kind.to_string(), labels));
    }
    out
}

/// Every sample name a scrape can show (`_bucket` and the like included).
fn sample_names() -> BTreeSet<String> {
    scrape()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

fn metric_names(text: &str) -> BTreeSet<String> {
    Regex::new(r"kubeinvoke_[a-z_]+")
        .unwrap()
        .find_iter(text)
        .map(|m| m.as_str().to_string())
        .collect()
}

#[test]
fn the_documented_metrics_are_the_exported_ones() {
    let doc = repo_file(OPERATE);
    let mut documented = BTreeMap::new();
    for row in doc.lines().filter(|l| l.starts_with("| `kubeinvoke_")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let labels: BTreeSet<String> = cells[3]
            .split(", ")
            .filter(|l| *l != "–")
            .map(|l| l.trim_matches('`').to_string())
            .collect();
        documented.insert(name, (cells[2].to_string(), labels));
    }
    let exported = exported();
    for (name, got) in &exported {
        assert_eq!(
            documented.get(name),
            Some(got),
            "{OPERATE} documents {name} otherwise than the code exports it (type, labels)"
        );
    }
    let stale: Vec<_> = documented
        .keys()
        .filter(|n| !exported.contains_key(*n))
        .collect();
    assert!(
        stale.is_empty(),
        "{OPERATE} documents metrics the code does not export: {stale:?}"
    );
}

#[test]
fn alerts_use_exported_metrics_and_link_their_runbook() {
    let rules: Value = serde_saphyr::from_str(&repo_file(ALERTS)).expect("alerts.yaml is YAML");
    let samples = sample_names();
    let windows: BTreeSet<&str> = EXPIRY_WINDOWS.iter().map(|(w, _)| *w).collect();
    let within = Regex::new(r#"within="([^"]*)""#).unwrap();
    let doc = repo_file(OPERATE);
    let headings: BTreeSet<&str> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("### Kubeinvoke"))
        .collect();
    let mut alerts = BTreeSet::new();
    for rule in rules["groups"][0]["rules"].as_array().expect("rules") {
        let alert = rule["alert"].as_str().expect("an alerting rule");
        let expr = rule["expr"].as_str().expect("an expression");
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{alert} reads no kubeinvoke metric");
        for name in names {
            assert!(samples.contains(&name), "{alert}: no metric {name}");
        }
        for window in within.captures_iter(expr) {
            assert!(
                windows.contains(&window[1]),
                "{alert}: no window {}",
                &window[1]
            );
        }
        assert_eq!(
            rule["annotations"]["runbook_url"].as_str(),
            Some(format!("{RUNBOOK_BASE}#{}", alert.to_lowercase()).as_str()),
            "{alert}: runbook_url"
        );
        alerts.insert(alert.strip_prefix("Kubeinvoke").expect("named Kubeinvoke…"));
    }
    assert_eq!(
        alerts, headings,
        "alerts and their runbook sections (### <alert>) in {OPERATE}"
    );
    // The chart swaps RUNBOOK_BASE for its value: both must still name it.
    let template = repo_file("charts/kubeinvoke/templates/prometheusrule.yaml");
    assert!(template.contains(&format!("replace \"{RUNBOOK_BASE}\"")));
    let values = repo_file("charts/kubeinvoke/values.yaml");
    assert!(values.contains(&format!("runbookBaseURL: {RUNBOOK_BASE}\n")));
}

#[test]
fn the_dashboard_graphs_every_metric_and_only_exported_ones() {
    let dashboard: Value =
        serde_json::from_str(&repo_file(DASHBOARD)).expect("the dashboard is JSON");
    let mut exprs = String::new();
    let mut stack = vec![&dashboard];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(e)) = map.get("expr") {
                    exprs.push_str(e);
                    exprs.push('\n');
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    let used = metric_names(&exprs);
    let samples = sample_names();
    let unknown: Vec<_> = used.iter().filter(|n| !samples.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard reads no such metrics: {unknown:?}"
    );
    let ungraphed: Vec<_> = exported()
        .into_keys()
        .filter(|n| !used.iter().any(|u| u.starts_with(n.as_str())))
        .collect();
    assert!(ungraphed.is_empty(), "not on the dashboard: {ungraphed:?}");
}
