//! `kubeinvoke-bench`: drives the scenarios of `make bench` (A to G) against the local control
//! plane (`KUBEINVOKE_CLUSTER_DIR`, started by `hack/bench.sh`) and writes `bench/RESULTS.md`.
#![forbid(unsafe_code)]

mod export_set;
mod fleet;
mod fleet_set;
mod follow;
mod instructions;
mod procs;
mod refresh;
mod report;
mod report_g;
mod results_file;
mod scenario;
mod scenario_g;
mod stats;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use procs::{Emulator, Error};
use report::Report;
use stats::{Budget, Work, lower_bound, polls_honouring_retry_after};

#[derive(Parser, Debug)]
#[command(
    about = "kubeinvoke against ARM's request budget (emulated), side by side with the Azure SDK for Python"
)]
struct Args {
    /// Directory written by `hack/cluster.sh up` (holds cluster.env).
    #[arg(long, env = "KUBEINVOKE_CLUSTER_DIR")]
    cluster_dir: PathBuf,
    /// The operator binary (release build for real figures).
    #[arg(long, default_value = "target/release/kubeinvoke")]
    operator: PathBuf,
    #[arg(long, default_value = "target/release/kubeinvoke-emulator")]
    emulator: PathBuf,
    /// Python of the venv with the Azure SDK (emulator/conformance/requirements.txt); none skips C.
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long, default_value = "bench/sdk_baseline.py")]
    sdk_script: PathBuf,
    /// Scenario A and C: run commands created at once.
    #[arg(long, default_value_t = 1000)]
    commands: usize,
    /// Scenario B: finished RemoteCommands at rest (0 skips B).
    #[arg(long, default_value_t = 10_000)]
    rest_commands: usize,
    /// Scenario B: exported KubeconfigExports at rest.
    #[arg(long, default_value_t = 1000)]
    rest_exports: usize,
    /// Seconds each run command takes at ARM.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    #[arg(long, default_value_t = 1)]
    retry_after: u64,
    /// Scenario A runs, each `<fraction of ARM's buckets for the operator's own>:<dispatchPolicy>`;
    /// the goals are checked against the first.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.9:AtMostOnce,0.9:AtLeastOnce"
    )]
    a_runs: Vec<String>,
    /// Threads of scenario C (default: as many as commands, like the operator, which has every
    /// resource in flight at once).
    #[arg(long)]
    sdk_concurrency: Option<usize>,
    #[arg(long, default_value = "bench/RESULTS.md")]
    out: PathBuf,
    /// How the run was started, quoted in the report.
    #[arg(long, default_value = "make bench")]
    label: String,
    /// Where emulator and operator logs go (kept after the run).
    #[arg(long, default_value = "/tmp")]
    scratch: PathBuf,
    /// Commands of the instruction count under callgrind (0 skips it).
    #[arg(long, default_value_t = 0)]
    instructions_commands: usize,
    /// The operator binary for the instruction count: a build with symbols (`--profile profiling`),
    /// so the profile names functions. Default: --operator.
    #[arg(long)]
    instructions_operator: Option<PathBuf>,
    /// Scenario D: subscriptions of the fleet, each with its own principal (0 skips D).
    #[arg(long, default_value_t = 10)]
    fleet_subscriptions: usize,
    /// Scenario D: commands per subscription, all created at once.
    #[arg(long, default_value_t = 300)]
    fleet_commands: usize,
    /// Scenario E: `kubectl invoke` invocations run one at a time, then this many at once
    /// (0 skips E).
    #[arg(long, default_value_t = 200)]
    cli_concurrent: usize,
    /// Scenario E: invocations run one at a time.
    #[arg(long, default_value_t = 20)]
    cli_sequential: usize,
    /// Scenario F: KubeconfigExports refreshed once each, for the API server writes of a refresh
    /// (0 skips F).
    #[arg(long, default_value_t = 100)]
    refresh_exports: usize,
    #[command(flatten)]
    set: scenario_g::SetArgs,
    /// Only these scenarios (letters A to G; the instruction count goes with A). A run of some
    /// of them replaces only their sections of an existing --out and notes that under its title.
    #[arg(long, value_delimiter = ',', default_value = "A,B,C,D,E,F,G")]
    scenarios: Vec<String>,
    /// Fail unless every command of A, C and D and every target of G succeeded (the smoke run in
    /// make test).
    #[arg(long)]
    require_success: bool,
}

const ALL_SCENARIOS: &str = "ABCDEFG";

/// The scenarios selected by --scenarios, as upper-case letters in order.
fn selected(args: &Args) -> Result<String, Error> {
    let mut letters = String::new();
    for s in &args.scenarios {
        let l = s.trim().to_ascii_uppercase();
        if l.len() != 1 || !ALL_SCENARIOS.contains(l.as_str()) {
            return Err(format!("--scenarios: {s:?} is not one of A to G").into());
        }
        letters.push_str(&l);
    }
    Ok(ALL_SCENARIOS
        .chars()
        .filter(|c| letters.contains(*c))
        .collect())
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("kubeinvoke-bench: {e}");
        std::process::exit(1);
    }
}

fn cluster_env(dir: &Path) -> Result<HashMap<String, String>, Error> {
    let text = std::fs::read_to_string(dir.join("cluster.env")).map_err(|e| {
        format!(
            "{}/cluster.env: {e} (start the control plane with hack/cluster.sh up)",
            dir.display()
        )
    })?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn output_of(program: &Path, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|k| format!("{:.1} GiB", k / 1024.0 / 1024.0))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!(
        "{} ({cpu}, {cores} cores, {mem} RAM)",
        output_of(Path::new("uname"), &["-srm"])
    )
}

async fn run(args: Args) -> Result<(), Error> {
    let only = selected(&args)?;
    let on = |scenario: char| only.contains(scenario);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let env = cluster_env(&args.cluster_dir)?;
    let kubeconfig = PathBuf::from(
        env.get("KUBECONFIG")
            .ok_or("cluster.env has no KUBECONFIG")?,
    );
    let config = Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    let client = Client::try_from(config)?;
    let work_dir = scenario::work_dir(&args.scratch.join("kubeinvoke-bench"));
    std::fs::create_dir_all(&work_dir)?;

    for crd in kubeinvoke::api::crds::all() {
        let api: kube::Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
            kube::Api::all(client.clone());
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(
            &name,
            &kube::api::PatchParams::apply("kubeinvoke-bench").force(),
            &kube::api::Patch::Apply(&crd),
        )
        .await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // CRDs become Established within a second locally

    let emulator_args = vec!["--retry-after".to_string(), args.retry_after.to_string()];
    let emulator = Emulator::start(
        &args.emulator,
        &work_dir.join("emulator"),
        &scenario::world(args.duration),
        &emulator_args,
    )?;
    let work = Work {
        commands: args.commands as u64,
        reads_per_command: polls_honouring_retry_after(args.duration, args.retry_after as f64),
        duration: args.duration,
    };
    let bound = lower_bound(work, Budget::ARM);
    println!(
        "bench: ARM lower bound for {} commands: {bound:.1} s",
        args.commands
    );

    let mut a_runs = Vec::new();
    for spec in args.a_runs.iter().filter(|_| on('A')) {
        let (fraction, policy) = spec
            .split_once(':')
            .and_then(|(f, p)| Some((f.parse::<f64>().ok()?, p)))
            .ok_or_else(|| format!("--a-runs {spec:?}: expected <fraction>:<dispatchPolicy>"))?;
        println!(
            "bench: scenario A, {} commands, {policy}, client buckets at {:.0}% of ARM's",
            args.commands,
            fraction * 100.0
        );
        let timeout = Duration::from_secs_f64(bound * 3.0 + 120.0);
        let r = scenario::burst_through_operator(
            &client,
            &emulator,
            &args.operator,
            &kubeconfig,
            &work_dir,
            args.commands,
            args.duration,
            fraction,
            policy,
            timeout,
        )
        .await?;
        println!(
            "bench:   {:.1} s, {}/{} succeeded, {} 429s, {:.2} ms CPU per command, peak RSS {:.1} MiB",
            r.seconds,
            r.succeeded,
            r.commands,
            r.arm.throttled,
            r.cpu_seconds * 1000.0 / r.commands as f64,
            r.peak_rss_mib
        );
        a_runs.push(r);
    }

    let mut versions = vec![
        (
            "kubeinvoke".to_string(),
            output_of(&args.operator, &["version"]),
        ),
        (
            "kube-apiserver".to_string(),
            output_of(
                Path::new(
                    env.get("KUBEINVOKE_KUBECTL")
                        .map(String::as_str)
                        .unwrap_or("kubectl"),
                ),
                &[
                    "version",
                    "--short",
                    "--kubeconfig",
                    &kubeconfig.to_string_lossy(),
                ],
            )
            .replace('\n', ", "),
        ),
        (
            "rustc".to_string(),
            output_of(Path::new("rustc"), &["--version"]),
        ),
    ];

    let c = match args.python.as_ref().filter(|_| on('C')) {
        Some(python) => {
            let concurrency = args.sdk_concurrency.unwrap_or(args.commands);
            println!(
                "bench: scenario C, {} commands through the Azure SDK for Python, {concurrency} threads",
                args.commands
            );
            let (r, raw) = scenario::burst_through_sdk(
                &emulator,
                python,
                &args.sdk_script,
                args.commands,
                concurrency,
                args.duration,
            )
            .await?;
            println!(
                "bench:   {:.1} s, {} 429s, {:.2} ms CPU per command, peak RSS {:.1} MiB",
                r.seconds,
                r.arm.throttled,
                r.cpu_seconds * 1000.0 / r.commands as f64,
                r.peak_rss_mib
            );
            versions.push((
                "Python".into(),
                raw["python"].as_str().unwrap_or_default().to_string(),
            ));
            versions.push(("Azure SDK".into(), raw["sdk"].to_string()));
            Some(r)
        }
        None => None,
    };

    let b = if on('B') && (args.rest_commands > 0 || args.rest_exports > 0) {
        println!(
            "bench: scenario B, {} finished RemoteCommands + {} KubeconfigExports at rest",
            args.rest_commands, args.rest_exports
        );
        let r = scenario::at_rest(
            &client,
            &emulator,
            &args.operator,
            &kubeconfig,
            &work_dir,
            args.rest_commands,
            args.rest_exports,
        )
        .await?;
        println!(
            "bench:   peak RSS {:.1} MiB, {:.2} CPU seconds to settle",
            r.peak_rss_mib, r.cpu_seconds
        );
        Some(r)
    } else {
        None
    };

    let d = if on('D') && args.fleet_subscriptions > 0 && args.fleet_commands > 0 {
        println!(
            "bench: scenario D, {} subscriptions × {} commands, one principal each",
            args.fleet_subscriptions, args.fleet_commands
        );
        let fleet_emulator = Emulator::start(
            &args.emulator,
            &work_dir.join("emulator-fleet"),
            &fleet::world(args.fleet_subscriptions, args.duration),
            &emulator_args,
        )?;
        let metrics = fleet::ApiServerMetrics::new(&env)?;
        let r = fleet::fleet_through_operator(
            &client,
            &metrics,
            &fleet_emulator,
            &args.operator,
            &kubeconfig,
            &work_dir,
            args.fleet_subscriptions,
            args.fleet_commands,
            args.duration,
            args.retry_after,
            Duration::from_secs(600),
        )
        .await?;
        println!(
            "bench:   slowest subscription {:.1} s ({:.3} × its bound {:.1} s), {}/{} succeeded, {} 429s, {:.2} ms CPU per command, peak RSS {:.1} MiB, {:.2} API server writes per command",
            r.slowest(),
            r.slowest() / r.bound,
            r.bound,
            r.succeeded,
            r.commands(),
            r.throttled,
            r.cpu_seconds * 1000.0 / r.commands() as f64,
            r.peak_rss_mib,
            r.writes_per_command()
        );
        if r.duplicates > 0 {
            return Err(format!("scenario D: {} duplicate dispatches", r.duplicates).into());
        }
        if args.require_success && r.succeeded != r.commands() {
            return Err(
                format!("scenario D: {} of {} succeeded", r.succeeded, r.commands()).into(),
            );
        }
        Some(r)
    } else {
        None
    };

    let instructions = if on('A') && args.instructions_commands > 0 {
        println!(
            "bench: instructions per command, {} commands under callgrind",
            args.instructions_commands
        );
        let r = instructions::count(
            &client,
            &emulator,
            args.instructions_operator
                .as_ref()
                .unwrap_or(&args.operator),
            &kubeconfig,
            &work_dir,
            args.instructions_commands,
        )
        .await?;
        println!(
            "bench:   {:.1} million instructions per command",
            r.per_command() / 1e6
        );
        Some(r)
    } else {
        None
    };

    let f = if on('F') && args.refresh_exports > 0 {
        println!(
            "bench: scenario F, {} KubeconfigExports exported, then refreshed once",
            args.refresh_exports
        );
        let refresh_emulator = Emulator::start(
            &args.emulator,
            &work_dir.join("emulator-refresh"),
            &refresh::world(),
            &[
                "--token-lifetime-seconds".to_string(),
                refresh::TOKEN_LIFETIME_SECONDS.to_string(),
            ],
        )?;
        let r = refresh::refreshes(
            &client,
            &fleet::ApiServerMetrics::new(&env)?,
            &refresh_emulator,
            &args.operator,
            &kubeconfig,
            &work_dir,
            args.refresh_exports,
        )
        .await?;
        println!(
            "bench:   {:.2} API server writes per first export, {:.2} per refresh",
            r.first_total(),
            r.refresh_total()
        );
        Some(r)
    } else {
        None
    };

    let g = if on('G') && args.set.set_subscriptions > 0 && args.set.set_clusters > 0 {
        let bench = scenario_g::Bench {
            client: &client,
            env: &env,
            kubeconfig: &kubeconfig,
            work_dir: &work_dir,
            operator: &args.operator,
            emulator: &args.emulator,
            emulator_args: &emulator_args,
            duration: args.duration,
            retry_after: args.retry_after as f64,
            require_success: args.require_success,
        };
        Some(scenario_g::run(&args.set, &bench).await?)
    } else {
        None
    };

    let mut e = Vec::new();
    if on('E') && args.cli_concurrent > 0 {
        for (n, concurrency) in [
            (args.cli_sequential, 1),
            (args.cli_concurrent, args.cli_concurrent),
        ] {
            println!("bench: scenario E, {n} kubectl invoke runs, {concurrency} at a time");
            let r = scenario::through_cli(
                &client,
                &emulator,
                &args.operator,
                &kubeconfig,
                &work_dir,
                n,
                concurrency,
                args.duration,
            )
            .await?;
            println!(
                "bench:   {}/{} exited 0; wait after the result p50 {:.2} s, p99 {:.2} s",
                r.succeeded,
                r.invocations,
                stats::percentile(&r.wait_after_result, 50.0).unwrap_or(f64::NAN),
                stats::percentile(&r.wait_after_result, 99.0).unwrap_or(f64::NAN)
            );
            if args.require_success && r.succeeded != r.invocations {
                return Err(format!(
                    "scenario E: {} of {} CLI runs exited 0",
                    r.succeeded, r.invocations
                )
                .into());
            }
            e.push(r);
        }
    }

    // A run of some scenarios says which (its sections go into the existing report).
    let command = if only != ALL_SCENARIOS && args.label == "make bench" {
        let letters: Vec<String> = only.chars().map(String::from).collect();
        format!("make bench SCENARIOS={}", letters.join(","))
    } else {
        args.label.clone()
    };
    let report = Report {
        command,
        date: output_of(Path::new("date"), &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine: machine(),
        versions,
        work,
        retry_after: args.retry_after as f64,
        a: a_runs,
        b,
        c,
        instructions,
        d,
        e,
        f,
        g,
    };
    let mut text = report.render();
    if only != ALL_SCENARIOS
        && let Ok(old) = std::fs::read_to_string(&args.out)
    {
        let key = format!("Re-measured: scenario {only} ");
        let note = format!(
            "{key}by `{}` on {} ({} on {}); the other sections are from the run above and were not measured again then.",
            report.command, report.date, report.versions[0].1, report.machine
        );
        text = results_file::merge(&old, &text, &key, &note);
    }
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, &text)?;
    println!("\n{text}\nbench: wrote {}", args.out.display());
    // Goals are reported, not enforced. The operator running a command twice fails the run;
    // commands that did not succeed are in the report (and in the operator logs under --scratch).
    for r in report
        .a
        .iter()
        .chain(report.c.iter().filter(|_| args.require_success))
    {
        if args.require_success && r.succeeded != r.commands {
            return Err(format!("{}: {} of {} succeeded", r.label, r.succeeded, r.commands).into());
        }
    }
    for r in &report.a {
        if r.arm.duplicates() > 0 {
            return Err(format!("{}: {} duplicate dispatches", r.label, r.arm.duplicates()).into());
        }
    }
    Ok(())
}
