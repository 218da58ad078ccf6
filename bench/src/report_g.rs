//! The scenario G section of `bench/RESULTS.md`: the fleet runs side by side, goals with MET / NOT MET.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::export_set::ExportSetResult;
use crate::fleet_set::{FleetShape, SetResult, SetRun, UNSELECTED_PER_SUBSCRIPTION};
use crate::report::verdict;
use crate::stats::polls_honouring_retry_after;

/// The bound a run is judged by: ARM's for the slowest subscription, or what the limit allows.
pub fn bound(shape: &FleetShape, r: &SetRun) -> f64 {
    shape.arm_bound().max(shape.concurrency_bound(r.limit))
}

/// Goal rows of one run: (figure, value, verdict when the row is a goal).
fn rows(g: &SetResult, r: &SetRun) -> Vec<(&'static str, String, Option<bool>)> {
    let b = bound(&g.shape, r);
    let wanted = g.shape.targets();
    let writes: Vec<String> = r
        .writes
        .iter()
        .map(|(k, v)| format!("{k}: {:.2}", *v as f64 / r.targets.max(1) as f64))
        .collect();
    vec![
        (
            "targets found by the selector (goal: every tagged cluster, no other)",
            format!("{}/{wanted}", r.targets),
            Some(r.targets == wanted),
        ),
        (
            "discovery: set created → targets in its status",
            format!(
                "{:.2} s ({} list requests)",
                r.discovery_seconds, r.list_requests
            ),
            None,
        ),
        (
            "bound: ARM's for the slowest subscription / the limit's",
            format!(
                "{:.1} s / {:.1} s",
                g.shape.arm_bound(),
                g.shape.concurrency_bound(r.limit)
            ),
            None,
        ),
        (
            "time until all finished: set created → its completion (goal ≤ 1.15 × bound)",
            format!("{:.1} s = {:.2} × {:.1} s", r.seconds, r.seconds / b, b),
            Some(r.seconds <= 1.15 * b),
        ),
        (
            "ARM accepted the first / the last runCommand POST",
            format!("{:.1} s / {:.1} s", r.first_dispatch, r.last_dispatch),
            None,
        ),
        (
            "slowest / fastest subscription: its last command terminal",
            format!(
                "{:.1} s / {:.1} s",
                r.slowest(),
                r.finished.iter().copied().fold(f64::INFINITY, f64::min)
            ),
            None,
        ),
        (
            "succeeded (goal: all)",
            format!(
                "{}/{} ({} failed, reason {})",
                r.succeeded, r.targets, r.failed, r.reason
            ),
            Some(r.succeeded == wanted),
        ),
        (
            "most commands running at ARM at once (goal ≤ the limit)",
            format!("{} (limit {})", r.running_peak, r.limit),
            Some(r.running_peak as usize <= r.limit),
        ),
        (
            "429s (goal 0)",
            r.throttled.to_string(),
            Some(r.throttled == 0),
        ),
        (
            "duplicate dispatches (goal 0)",
            format!(
                "{} ({} clusters dispatched once)",
                r.duplicates, r.dispatched
            ),
            Some(r.duplicates == 0),
        ),
        ("ARM requests", r.arm_requests.to_string(), None),
        (
            "operator CPU per target (goal ≤ 2 ms)",
            format!(
                "{:.2} ms ({:.2} s in all)",
                r.cpu_per_target() * 1000.0,
                r.cpu_seconds
            ),
            Some(r.cpu_per_target() <= 0.002),
        ),
        ("peak RSS", format!("{:.1} MiB", r.peak_rss_mib), None),
        (
            "API server writes per target",
            format!("{:.2} ({})", r.writes_per_target(), writes.join(", ")),
            None,
        ),
    ]
}

pub fn section(g: &SetResult) -> String {
    let mut s = String::new();
    let shape = &g.shape;
    let polls = polls_honouring_retry_after(shape.duration, shape.retry_after);
    let _ = writeln!(
        s,
        "\n## G: one fleet run over {} clusters\n\n\
         {} AKS clusters tagged `env: prod`, {} in each of {} subscriptions next to {} tagged `env: dev` there, \
         found by one RemoteCommandSet's selector (`subscriptions` and `matchTags: {{env: prod}}`, ARM's listings at {} to a page), \
         each command {} s at ARM. A set has one credential, for the listing and every target: here one principal with a role on every \
         subscription. ARM's buckets are per (subscription, principal), so each subscription still has a budget of its own, as in D. \
         Each run has a fresh namespace and operator (client buckets at 90% of ARM's). The set launches in the order of its \
         targets (sorted by resource ID), so under a limit the subscriptions finish one after another. \
         ARM's lower bound for the slowest subscription's share ({} POSTs, {} polls, the listing's {} page(s)): **{:.1} s**; \
         with at most n commands running at once, no run ends before ⌈{} / n⌉ × {} s; a run is judged by the larger bound.\n",
        shape.targets(),
        shape.targets(),
        shape.clusters,
        shape.subscriptions,
        UNSELECTED_PER_SUBSCRIPTION,
        shape.page_size,
        shape.duration,
        shape.clusters,
        shape.clusters as u64 * polls,
        shape.pages(),
        shape.arm_bound(),
        shape.targets(),
        shape.duration
    );
    let _ = write!(s, "| figure |");
    for r in &g.runs {
        let _ = write!(s, " `maxConcurrency: {}` | verdict |", r.max_concurrency);
    }
    let _ = write!(s, "\n|---|");
    for _ in &g.runs {
        let _ = write!(s, "---|---|");
    }
    let _ = writeln!(s);
    let per_run: Vec<_> = g.runs.iter().map(|r| rows(g, r)).collect();
    if let Some(first) = per_run.first() {
        for (i, (figure, _, _)) in first.iter().enumerate() {
            let _ = write!(s, "| {figure} |");
            for run in &per_run {
                let (_, value, ok) = &run[i];
                let v = ok.map(|ok| format!("**{}**", verdict(ok)));
                let _ = write!(s, " {value} | {} |", v.unwrap_or_default());
            }
            let _ = writeln!(s);
        }
    }
    if let Some(x) = &g.exports {
        exports(&mut s, shape, x);
    }
    s
}

fn list(m: &BTreeMap<String, u64>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The KubeconfigExportSet part of G.
fn exports(s: &mut String, shape: &FleetShape, x: &ExportSetResult) {
    let n = x.clusters.max(1) as f64;
    let wanted = shape.targets();
    let export_writes: u64 = x.export_writes.values().sum();
    let rest_writes: u64 = x.rest_writes.values().sum();
    let secret_writes = x.rest_secret_writes();
    let _ = writeln!(
        s,
        "\n### The same fleet's kubeconfigs: one KubeconfigExportSet\n\n\
         One KubeconfigExportSet with the same selector makes one KubeconfigExport (and Secret) per cluster, role `User`. \
         For the measurement `template.refreshInterval` and `discoveryInterval` are both `{}` (defaults `1h` and `5m`), so a round \
         of refreshes fits in the run. The clusters' kubeconfigs never change at ARM here, so once all are exported nothing the \
         set or its exports hold changes: *at rest* is the time from then until every export has refreshed once more and the set \
         has listed ARM again (at most three intervals).\n\n\
         | figure | value | goal | verdict |\n|---|---|---|---|\n\
         | clusters held / ready | {} / {} | {wanted} / {wanted} | **{}** |\n\
         | discovery: set created → last page of its listing answered | {:.2} s | | |\n\
         | set created → its status counts the clusters (written after it made every export) | {:.1} s | | |\n\
         | time until all exported: set created → ready = clusters | {:.1} s | | |\n\
         | 429s until then | {} | 0 | **{}** |\n\
         | operator CPU per cluster until then | {:.2} ms | | |\n\
         | API server writes until then | {} = {:.2} per cluster ({}) | | |\n\
         | ARM listings (each over every subscription), seconds after the set was created | {} | | |\n\
         | at rest: every export refreshed once more, the set listed again | {:.0} s, {}/{} refreshed | | |\n\
         | Secret writes at rest | {} | 0 | **{}** |\n\
         | all API server writes at rest | {} ({}) | | |\n\
         | ARM requests at rest | {} | | |\n\
         | operator CPU at rest | {:.2} s | | |\n\
         | peak RSS | {:.1} MiB | | |",
        x.interval,
        x.clusters,
        x.ready,
        verdict(x.clusters == wanted && x.ready == wanted),
        x.discovery_seconds,
        x.counted_seconds,
        x.exported_seconds,
        x.export_throttled,
        verdict(x.export_throttled == 0),
        x.export_cpu_seconds * 1000.0 / n,
        export_writes,
        export_writes as f64 / n,
        list(&x.export_writes),
        x.listings
            .iter()
            .map(|t| format!("{t:.1} s"))
            .collect::<Vec<_>>()
            .join(", "),
        x.rest_seconds,
        x.refreshed,
        x.clusters,
        secret_writes,
        verdict(secret_writes == 0),
        rest_writes,
        list(&x.rest_writes),
        list(&x.rest_arm),
        x.rest_cpu_seconds,
        x.peak_rss_mib
    );
}
