//! `bench/RESULTS.md`: the figures of one run, the goals with MET / NOT MET, and how to read them.

use std::fmt::Write as _;

use crate::fleet::FleetResult;
use crate::fleet_set::SetResult;
use crate::instructions::InstructionsResult;
use crate::refresh::RefreshResult;
use crate::scenario::{BurstResult, CliResult, RestResult};
use crate::stats::{Budget, Work, lower_bound, percentile};

pub struct Report {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub versions: Vec<(String, String)>,
    pub work: Work,
    pub retry_after: f64,
    pub a: Vec<BurstResult>,
    pub b: Option<RestResult>,
    pub c: Option<BurstResult>,
    /// Instructions per command (callgrind).
    pub instructions: Option<InstructionsResult>,
    /// Scenario D: a fleet of subscriptions.
    pub d: Option<FleetResult>,
    /// Scenario E: `kubectl invoke`, one at a time, then many at once.
    pub e: Vec<CliResult>,
    /// Scenario F: the writes of a KubeconfigExport refresh.
    pub f: Option<RefreshResult>,
    /// Scenario G: fleet runs of a RemoteCommandSet over a selector.
    pub g: Option<SetResult>,
}

fn ms(v: Option<f64>) -> String {
    v.map(|s| format!("{:.0} ms", s * 1000.0))
        .unwrap_or_else(|| "–".into())
}

fn p(values: &[f64], q: f64) -> Option<f64> {
    percentile(values, q)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok { "MET" } else { "NOT MET" }
}

/// Dispatch latencies of the commands the client's write bucket could send at once (the first
/// `burst` created): the "under budget" part of the run.
fn under_budget(r: &BurstResult) -> Vec<f64> {
    let burst = r
        .client_budget
        .map(|b| b.write_burst.floor() as usize)
        .unwrap_or(usize::MAX);
    r.dispatch_latency.iter().take(burst).copied().collect()
}

/// How long after A's first dispatch the burst is over, for [`lag_by_burst`]: the write burst
/// has gone out and the polls of its commands are through the read bucket.
const BURST_WINDOW: f64 = 10.0;

/// A's status lag p99 of the commands dispatched within [`BURST_WINDOW`] of the first dispatch
/// and of those dispatched later: whether the tail is the burst's.
fn lag_by_burst(r: &BurstResult) -> String {
    let Some(first) = r.dispatch_times.iter().copied().reduce(f64::min) else {
        return "–".into();
    };
    let (mut burst, mut later) = (Vec::new(), Vec::new());
    for (at, lag) in r.dispatch_times.iter().zip(&r.status_lag) {
        if at - first < BURST_WINDOW {
            burst.push(*lag);
        } else {
            later.push(*lag);
        }
    }
    format!(
        "{} ({} commands) / {} ({})",
        ms(p(&burst, 99.0)),
        burst.len(),
        ms(p(&later, 99.0)),
        later.len()
    )
}

/// The largest inversion of dispatch order against creation order: how much later than some
/// command created after it a command was dispatched (0 when dispatch order = creation order).
fn largest_inversion(r: &BurstResult) -> f64 {
    let mut later_min = f64::INFINITY;
    let mut worst = 0.0f64;
    for t in r.dispatch_times.iter().rev() {
        worst = worst.max(t - later_min);
        later_min = later_min.min(*t);
    }
    worst
}

/// The two parts of A's status lags (`BurstResult::lag_parts`), p50 / p99 of each.
fn lag_parts(r: &BurstResult) -> String {
    if r.lag_parts.is_empty() {
        return "–".into();
    }
    let (found, written): (Vec<f64>, Vec<f64>) = r.lag_parts.iter().copied().unzip();
    format!(
        "{} / {}; {} / {}",
        ms(p(&found, 50.0)),
        ms(p(&found, 99.0)),
        ms(p(&written, 50.0)),
        ms(p(&written, 99.0))
    )
}

/// Where the slowest 1% of A's status lags went: the mean of each part over them.
fn lag_tail(r: &BurstResult) -> String {
    let mut parts = r.lag_parts.clone();
    if parts.is_empty() {
        return "–".into();
    }
    parts.sort_by(|a, b| (b.0 + b.1).total_cmp(&(a.0 + a.1)));
    let tail = &parts[..parts.len().div_ceil(100)];
    let mean = |f: fn(&(f64, f64)) -> f64| tail.iter().map(f).sum::<f64>() / tail.len() as f64;
    format!(
        "{} lags of {} or more: {} until the poll that found the result, {} from that poll to the watch",
        tail.len(),
        ms(tail.last().map(|(a, b)| a + b)),
        ms(Some(mean(|t| t.0))),
        ms(Some(mean(|t| t.1)))
    )
}

fn requests_by_kind(r: &BurstResult) -> String {
    r.arm
        .by_kind
        .iter()
        .map(|(op, statuses)| {
            let s: Vec<String> = statuses
                .iter()
                .map(|(code, n)| format!("{code}×{n}"))
                .collect();
            format!("{op}: {}", s.join(" "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Report {
    pub fn lower_bound(&self) -> f64 {
        lower_bound(self.work, Budget::ARM)
    }

    /// Goals of issue 7 for one A run (with B and C, which are the same for every A run).
    pub fn goals(&self, a: &BurstResult) -> Vec<(String, String, bool)> {
        let mut goals = Vec::new();
        let bound = self.lower_bound();
        let n = a.commands as f64;
        goals.push((
            "A finishes within 1.15 × ARM's lower bound".into(),
            format!(
                "{:.1} s = {:.3} × {:.1} s",
                a.seconds,
                a.seconds / bound,
                bound
            ),
            a.seconds <= 1.15 * bound && a.succeeded == a.commands,
        ));
        goals.push((
            "every command succeeds (no run lost)".into(),
            format!("{}/{}", a.succeeded, a.commands),
            a.succeeded == a.commands,
        ));
        goals.push((
            "zero 429s in A".into(),
            format!("{}", a.arm.throttled),
            a.arm.throttled == 0,
        ));
        let under = under_budget(a);
        let d99 = p(&under, 99.0);
        goals.push((
            "dispatch p99 ≤ 250 ms while under budget".into(),
            format!("{} (first {} commands)", ms(d99), under.len()),
            d99.is_some_and(|v| v <= 0.25),
        ));
        let inversion = largest_inversion(a);
        goals.push((
            "largest dispatch-order inversion ≤ 1 s".into(),
            format!("{:.0} ms", inversion * 1000.0),
            !a.dispatch_times.is_empty() && inversion <= 1.0,
        ));
        let l99 = p(&a.status_lag, 99.0);
        goals.push((
            "status lag p99 ≤ 1.5 s".into(),
            ms(l99),
            l99.is_some_and(|v| v <= 1.5),
        ));
        if let Some(c) = &self.c {
            let c99 = p(&c.status_lag, 99.0);
            goals.push((
                "status lag p99 below C's".into(),
                format!("{} vs {}", ms(l99), ms(c99)),
                l99.zip(c99).is_some_and(|(a, c)| a < c),
            ));
        }
        goals.push((
            "no TLS handshake per command: ≤ 0.01 new ARM connections per command".into(),
            a.arm.connections(a.commands),
            a.arm.handshakes as f64 <= 0.01 * n,
        ));
        let per = a.cpu_seconds / n;
        goals.push((
            "≤ 2 ms operator CPU per command".into(),
            format!("{:.2} ms", per * 1000.0),
            per <= 0.002,
        ));
        goals.push((
            "peak RSS ≤ 64 MiB in A".into(),
            format!("{:.1} MiB", a.peak_rss_mib),
            a.peak_rss_mib <= 64.0,
        ));
        if let Some(b) = &self.b {
            goals.push((
                "peak RSS ≤ 64 MiB in B".into(),
                format!("{:.1} MiB", b.peak_rss_mib),
                b.peak_rss_mib <= 64.0,
            ));
        }
        if let Some(c) = &self.c {
            let ratio = c.cpu_seconds / a.cpu_seconds.max(1e-9);
            goals.push((
                "≥ 20× less CPU than C".into(),
                format!("{ratio:.1}×"),
                ratio >= 20.0,
            ));
        }
        goals
    }

    /// Scenarios A and C: goals, the lower bound, the runs side by side.
    fn render_burst(&self, s: &mut String) {
        let bound = self.lower_bound();
        let w = self.work;
        let _ = writeln!(
            s,
            "## Goals\n\nOne pair of columns per A run; B and C are shared.\n"
        );
        let _ = write!(s, "| goal |");
        for a in &self.a {
            let _ = write!(s, " {} | verdict |", a.label);
        }
        let _ = write!(s, "\n|---|");
        for _ in &self.a {
            let _ = write!(s, "---|---|");
        }
        let _ = writeln!(s);
        let per_run: Vec<Vec<(String, String, bool)>> =
            self.a.iter().map(|a| self.goals(a)).collect();
        if let Some(first) = per_run.first() {
            for (row, (goal, _, _)) in first.iter().enumerate() {
                let _ = write!(s, "| {goal} |");
                for run in &per_run {
                    let (_, value, ok) = &run[row];
                    let _ = write!(s, " {value} | **{}** |", verdict(*ok));
                }
                let _ = writeln!(s);
            }
        }

        let _ = writeln!(s, "\n## Lower bound\n");
        let _ = writeln!(
            s,
            "Each command costs one write (the runCommand POST) and, honouring `Retry-After: {}` for a {} s command, {} reads (commandResults polls). \
             The last POST cannot leave before the write bucket has handed out {} tokens: max(0, ({} − {}) / {}) s, and its result exists {} s later; \
             all {} reads must fit through the read bucket too. **ARM lower bound: {:.1} s.** \
             The operator keeps its own buckets at 90% of ARM's by default (a margin against clock skew and other clients of the same principal), \
             which alone puts its best possible time at {:.1} s = {:.3} × ARM's bound.\n",
            self.retry_after,
            w.duration,
            w.reads_per_command,
            w.commands,
            w.commands,
            Budget::ARM.write_burst,
            Budget::ARM.write_rate,
            w.duration,
            w.commands * w.reads_per_command,
            bound,
            lower_bound(w, Budget::ARM.scaled(0.9)),
            lower_bound(w, Budget::ARM.scaled(0.9)) / bound
        );

        let _ = writeln!(s, "## Runs\n");
        let mut cols: Vec<&BurstResult> = self.a.iter().collect();
        if let Some(c) = &self.c {
            cols.push(c);
        }
        let _ = write!(s, "| figure |");
        for r in &cols {
            let _ = write!(s, " {} |", r.label);
        }
        let _ = write!(s, "\n|---|");
        for _ in &cols {
            let _ = write!(s, "---|");
        }
        let _ = writeln!(s);
        let mut row = |name: &str, f: &dyn Fn(&BurstResult) -> String| {
            let _ = write!(s, "| {name} |");
            for r in &cols {
                let _ = write!(s, " {} |", f(r));
            }
            let _ = writeln!(s);
        };
        row("time until all finished", &|r| {
            format!("{:.1} s ({:.3} × bound)", r.seconds, r.seconds / bound)
        });
        row("succeeded", &|r| {
            let other: Vec<String> = r
                .other_outcomes
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            if other.is_empty() {
                format!("{}/{}", r.succeeded, r.commands)
            } else {
                format!("{}/{} ({})", r.succeeded, r.commands, other.join(", "))
            }
        });
        row("dispatch latency p50 / p99 (all)", &|r| {
            format!(
                "{} / {}",
                ms(p(&r.dispatch_latency, 50.0)),
                ms(p(&r.dispatch_latency, 99.0))
            )
        });
        row("dispatch latency p50 / p99 (under budget)", &|r| {
            let u = under_budget(r);
            if r.client_budget.is_some() {
                format!(
                    "{} / {} (first {})",
                    ms(p(&u, 50.0)),
                    ms(p(&u, 99.0)),
                    u.len()
                )
            } else {
                "–".into()
            }
        });
        row("largest dispatch-order inversion", &|r| {
            if r.dispatch_times.is_empty() {
                "–".into()
            } else {
                format!("{:.0} ms", largest_inversion(r) * 1000.0)
            }
        });
        row("status lag p50 / p99", &|r| {
            format!(
                "{} / {}",
                ms(p(&r.status_lag, 50.0)),
                ms(p(&r.status_lag, 99.0))
            )
        });
        row("status lag p90 / p99.9 / max", &|r| {
            let max = r.status_lag.iter().copied().reduce(f64::max);
            format!(
                "{} / {} / {}",
                ms(p(&r.status_lag, 90.0)),
                ms(p(&r.status_lag, 99.9)),
                ms(max)
            )
        });
        row(
            "status lag p99: commands dispatched in the first 10 s / later",
            &lag_by_burst,
        );
        row(
            "status lag in two parts, p50 / p99: result out at ARM → the poll that found it; that poll → the watch saw the terminal status",
            &lag_parts,
        );
        row(
            "where the slowest 1% of status lags waited (mean of each part)",
            &lag_tail,
        );
        row("ARM requests (total)", &|r| {
            r.arm.arm_requests().to_string()
        });
        row("ARM requests by kind (operation: status×count)", &|r| {
            requests_by_kind(r)
        });
        row("429s received", &|r| r.arm.throttled.to_string());
        row("requests before Retry-After elapsed", &|r| {
            r.arm.early.to_string()
        });
        row("duplicate dispatches", &|r| r.arm.duplicates().to_string());
        row("new connections to ARM: TLS handshakes", &|r| {
            r.arm.connections(r.commands)
        });
        row("CPU seconds (total / per command)", &|r| {
            format!(
                "{:.2} s / {:.2} ms",
                r.cpu_seconds,
                r.cpu_seconds * 1000.0 / r.commands as f64
            )
        });
        row("of which in the kernel (system calls, network)", &|r| {
            format!(
                "{:.2} s ({:.0}%)",
                r.system_cpu_seconds,
                100.0 * r.system_cpu_seconds / r.cpu_seconds.max(f64::EPSILON)
            )
        });
        row("peak RSS", &|r| format!("{:.1} MiB", r.peak_rss_mib));
        row("notes", &|r| r.note.clone());

        if let (Some(a), Some(c)) = (self.a.first(), &self.c) {
            let _ = writeln!(s, "\n### C ÷ A\n");
            let _ = writeln!(s, "- time: {:.2}×", c.seconds / a.seconds);
            let _ = writeln!(s, "- CPU: {:.1}×", c.cpu_seconds / a.cpu_seconds.max(1e-9));
            let _ = writeln!(
                s,
                "- peak RSS: {:.1}×",
                c.peak_rss_mib / a.peak_rss_mib.max(1e-9)
            );
            let _ = writeln!(
                s,
                "- ARM requests: {:.2}×",
                c.arm.arm_requests() as f64 / a.arm.arm_requests().max(1) as f64
            );
            let _ = writeln!(s, "- 429s: {} vs {}", c.arm.throttled, a.arm.throttled);
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let w = self.work;
        let _ = writeln!(s, "# kubeinvoke benchmark results\n");
        let _ = writeln!(s, "Produced by `{}` on {}.\n", self.command, self.date);
        let _ = writeln!(s, "- Machine: {}", self.machine);
        for (k, v) in &self.versions {
            let _ = writeln!(s, "- {k}: {v}");
        }
        let _ = writeln!(
            s,
            "- Work: {} AKS run commands created at once, each {} s at ARM (`commandDuration`), `Retry-After: {}`; emulator with ARM's buckets (writes {}/{} per s, reads {}/{} per s per subscription and principal)\n",
            w.commands,
            w.duration,
            self.retry_after,
            Budget::ARM.write_burst,
            Budget::ARM.write_rate,
            Budget::ARM.read_burst,
            Budget::ARM.read_rate
        );

        if !self.a.is_empty() || self.c.is_some() {
            self.render_burst(&mut s);
        }
        if let Some(b) = &self.b {
            let _ = writeln!(
                s,
                "\n## B: at rest\n\n{} finished RemoteCommands and {} exported KubeconfigExports exist before the operator starts. \
                 It listed and reconciled them all and settled in {:.1} s, using {:.2} CPU seconds; **peak RSS {:.1} MiB**; ARM requests: {}.",
                b.commands,
                b.exports,
                b.settle_seconds,
                b.cpu_seconds,
                b.peak_rss_mib,
                b.arm_requests
            );
        }
        if let Some(i) = &self.instructions {
            let _ = writeln!(
                s,
                "\n## Instructions per command\n\n\
                 The operator under valgrind's callgrind, once idle and once running {} commands (same emulator, same cluster): \
                 **{:.1} million instructions per command** ({} − {} instructions, ÷ {}). Unlike CPU seconds this does not depend on \
                 what else the machine runs, so one run judges a change. Where they go: the functions whose own instructions grew most from the idle run to the loaded one, per command (start-up, which under valgrind is mostly the TLS library seeding its random generator once, cancels out):\n\n```\n{}\n```",
                i.commands,
                i.per_command() / 1e6,
                i.loaded,
                i.idle,
                i.commands,
                i.top.join("\n")
            );
        }
        if let Some(d) = &self.d {
            let per_cpu = d.cpu_seconds / d.commands().max(1) as f64;
            let ratio = d.slowest() / d.bound;
            let writes: Vec<String> = d
                .writes
                .iter()
                .map(|(k, v)| format!("{k}: {:.2}", *v as f64 / d.commands().max(1) as f64))
                .collect();
            let _ = writeln!(
                s,
                "\n## D: a fleet\n\n{} subscriptions, each with its own principal (and so its own ARM budget), {} commands each created at once ({} in all), one operator. \
                 ARM's lower bound for one subscription's share: **{:.1} s**.\n\n\
                 | figure | value | goal | verdict |\n|---|---|---|---|\n\
                 | slowest subscription finished | {:.1} s = {:.3} × bound | ≤ 1.15 × bound | **{}** |\n\
                 | fastest subscription finished | {:.1} s | | |\n\
                 | succeeded | {}/{} | all | **{}** |\n\
                 | 429s | {} | 0 | **{}** |\n\
                 | duplicate dispatches | {} | 0 | **{}** |\n\
                 | new connections to ARM: TLS handshakes | {} | ≤ 0.01 per command | **{}** |\n\
                 | operator CPU per command | {:.2} ms | ≤ 2 ms | **{}** |\n\
                 | peak RSS (idle once ready; the rest per 1000 commands in flight) | {:.1} MiB ({:.1} MiB idle; {:.1} MiB per 1000) | | |\n\
                 | API server writes per command | {:.2} ({}) | | |\n\
                 | the machine's CPU from the first create to the last result (CPU seconds) | {:.1} of {:.1} ({:.0}% of {} cores): API server {:.1}, etcd {:.1}, emulator {:.1}, operator {:.1} | | |",
                d.subscriptions,
                d.per_subscription,
                d.commands(),
                d.bound,
                d.slowest(),
                ratio,
                verdict(ratio <= 1.15),
                d.finished.iter().copied().fold(f64::INFINITY, f64::min),
                d.succeeded,
                d.commands(),
                verdict(d.succeeded == d.commands()),
                d.throttled,
                verdict(d.throttled == 0),
                d.duplicates,
                verdict(d.duplicates == 0),
                d.arm.connections(d.commands()),
                verdict(d.arm.handshakes as f64 <= 0.01 * d.commands() as f64),
                per_cpu * 1000.0,
                verdict(per_cpu <= 0.002),
                d.peak_rss_mib,
                d.idle_rss_mib,
                (d.peak_rss_mib - d.idle_rss_mib) * 1000.0 / d.commands().max(1) as f64,
                d.writes_per_command(),
                writes.join(", "),
                d.cpu.machine,
                d.wall * cores() as f64,
                100.0 * d.cpu.machine / (d.wall * cores() as f64).max(f64::EPSILON),
                cores(),
                d.cpu.apiserver,
                d.cpu.etcd,
                d.cpu.emulator,
                d.cpu.operator
            );
        }
        if !self.e.is_empty() {
            let _ = writeln!(
                s,
                "\n## E: how long a pipeline waits (`kubectl invoke`)\n\n\
                 Each run is `kubectl invoke aks <cluster> --command 'echo …'` against the operator (client buckets at 90% of ARM's): \
                 the figure is the CLI's exit minus the moment its result became available at ARM (POST time + `commandDuration`). \
                 Goal (reported): p99 ≤ 1.5 s for a single invocation.\n\n\
                 | invocations | at once | exited 0 | wait after the result p50 / p99 | goal |\n|---|---|---|---|---|"
            );
            for r in &self.e {
                let p99 = p(&r.wait_after_result, 99.0);
                let goal = if r.concurrency == 1 {
                    format!("**{}**", verdict(p99.is_some_and(|v| v <= 1.5)))
                } else {
                    "–".into()
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {}/{} | {} / {} | {goal} |",
                    r.invocations,
                    r.concurrency,
                    r.succeeded,
                    r.invocations,
                    ms(p(&r.wait_after_result, 50.0)),
                    ms(p99)
                );
            }
        }
        if let Some(f) = &self.f {
            let list = |m: &std::collections::BTreeMap<String, f64>| {
                m.iter()
                    .map(|(k, v)| format!("{k}: {v:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let status_writes: f64 = f
                .refresh
                .iter()
                .filter(|(k, _)| k.starts_with("kubeconfigexports/status "))
                .map(|(_, v)| v)
                .sum();
            let _ = writeln!(
                s,
                "\n## F: what a KubeconfigExport refresh writes\n\n\
                 {} exports of an Entra-managed AKS cluster with `authentication: Token`, tokens valid {} s, so each is refreshed \
                 (at 90% of the lifetime) about half a minute after its first export; the API server's own write counters \
                 (`apiserver_request_total`) before and after, the operator's writes only. A token refresh changes the Secret, so it is written \
                 and an `Exported` Event tells what changed; an unchanged refresh writes only the status.\n\n\
                 | figure | writes per export | goal | verdict |\n|---|---|---|---|\n\
                 | first export | {:.2} ({}) | | |\n\
                 | refresh | {:.2} ({}) | | |\n\
                 | status writes per refresh | {:.2} (2 before: `Refreshing`, then the outcome) | 1 | **{}** |",
                f.exports,
                crate::refresh::TOKEN_LIFETIME_SECONDS,
                f.first_total(),
                list(&f.first),
                f.refresh_total(),
                list(&f.refresh),
                status_writes,
                verdict(status_writes <= 1.0)
            );
        }
        if let Some(g) = &self.g {
            s.push_str(&crate::report_g::section(g));
        }
        let _ = writeln!(
            s,
            "\n## How the figures are taken\n\n\
             - *time until all finished*: from the driver's first create request to the moment its watch sees the last resource in a terminal phase (C: the thread pool's wall time).\n\
             - *dispatch latency*: the emulator's log time of the accepted runCommand POST (matched through `x-ms-correlation-request-id`: for the operator the GUID it derives from uid, generation, runId and attempt) minus the moment the create call returned (C: the moment the call was submitted to the pool). *Under budget*: the first commands created, as many as the client's write burst. Creation order (A) is the order the API server stored the commands, the resourceVersion each create returned: with 48 creates in flight their answers come back in another order.\n\
             - *largest dispatch-order inversion* (A): the most a command was dispatched after one the API server stored later.\n\
             - *status lag*: when the watch saw the terminal status (C: when `.result()` returned) minus when the result became available at ARM (POST time + `commandDuration`). Its two parts (A): until the first commandResults poll that got the result (the emulator's log, same correlation id), and from that poll until the watch saw the terminal status (the operator's output Secret and status writes).\n\
             - ARM requests, 429s and early requests come from the emulator (`/_emulator/requests`, `/_emulator/counters`); Entra token requests are listed but not counted as ARM requests.\n\
             - CPU: utime + stime from `/proc/<pid>/stat` between readiness and the end of the run (B: since start); peak RSS: `VmHWM` from `/proc/<pid>/status`. C measures itself with `getrusage`.\n\
             - API server writes (D, F, G): the API server's own `apiserver_request_total` of POST, PUT, PATCH, APPLY and DELETE before and after, for the kinds the operator writes (the driver's own creates left out).\n\
             - G: *most commands running at ARM at once* is the emulator's `commandsRunningPeak` (commands accepted whose result was not out yet); *duplicate dispatches* are accepted runCommand POSTs for a cluster that had one already, from the emulator's request log.\n\
             - Goals are reported, never enforced: the run fails only when it cannot finish."
        );
        s
    }
}

/// The machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
