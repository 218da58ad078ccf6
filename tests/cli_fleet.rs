//! `kubectl invoke` fleet mode end to end: the plugin binary creates a RemoteCommandSet over tagged
//! emulated AKS clusters, prints a line per target and a summary, and exits as docs/cli.md says;
//! `kubectl invoke result` reattaches to the set.

mod support;

use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use kubeinvoke::api::{RemoteCommand, RemoteCommandSet};
use kubeinvoke::cli::exit;
use serde_json::Value;
use support::cli::{code, run, stderr};
use support::emulator::{Emulator, SUBSCRIPTION, aks_id, world};
use support::operator::Operator;
use support::rcmd::setup;

/// Tagged clusters: `ring 1` of prod succeeds; `fleet-fail` exits 3; `fleet-norun` refuses run
/// command; `fleet-dev` is not prod.
const CLUSTERS: &str = "          - {name: fleet-ok-1, tags: {env: prod, ring: \"1\"}}
          - {name: fleet-ok-2, tags: {env: prod, ring: \"1\"}}
          - {name: fleet-fail, tags: {env: prod, ring: \"2\"}, commandEnv: {FAIL: \"3\"}}
          - {name: fleet-norun, tags: {env: prod, ring: \"2\", tier: frozen}, disableRunCommand: true}
          - {name: fleet-dev, tags: {env: dev, ring: \"1\"}}";

fn start(ns: &str) -> (Emulator, Operator) {
    let emulator = Emulator::start(&world(CLUSTERS, ""), &[]);
    let operator = Operator::start(&emulator, ns, &[]);
    (emulator, operator)
}

/// A command that prints the namespace and exits with `$FAIL` (0 unless the cluster sets it).
fn command(ns: &str) -> String {
    format!("echo fleet {ns}; exit ${{FAIL:-0}}")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stdout line of `cluster`, whose cells are split on blanks.
fn line_of(out: &str, cluster: &str) -> Vec<String> {
    let found: Vec<&str> = out
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(cluster))
        .collect();
    assert_eq!(found.len(), 1, "one line for {cluster}: {out}");
    found[0].split_whitespace().map(str::to_string).collect()
}

/// The one RemoteCommandSet of the namespace.
async fn the_set(client: &Client, ns: &str) -> RemoteCommandSet {
    let mut sets = Api::<RemoteCommandSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list RemoteCommandSets")
        .items;
    assert_eq!(sets.len(), 1, "one fleet run");
    sets.remove(0)
}

async fn children(client: &Client, ns: &str) -> Vec<RemoteCommand> {
    Api::<RemoteCommand>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .expect("list RemoteCommands")
        .items
}

/// The selector (plus an `--id`) picks exactly the tagged clusters; every one succeeds: exit 0,
/// a header, one line per target with outcome, exit code and duration, and the summary.
#[tokio::test]
async fn every_target_succeeding_exits_0_with_a_line_per_target() {
    let (client, ns) = setup("clif-ok").await;
    let (emulator, _operator) = start(&ns);
    let command = command(&ns);
    let out = run(
        &ns,
        &[
            "aks",
            "--subscription",
            SUBSCRIPTION,
            "--selector",
            "env=prod, ring in (1)",
            "--id",
            &aks_id("aks1"),
            "--command",
            &command,
        ],
    );
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}\n{}", stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "header, three targets, summary: {text}");
    assert!(lines[0].starts_with("TARGET "), "{text}");
    for cluster in ["aks1", "fleet-ok-1", "fleet-ok-2"] {
        let cells = line_of(&text, cluster);
        assert_eq!(cells[1], "Succeeded", "{text}");
        assert_eq!(cells[2], "0", "exit code: {text}");
        assert!(cells[3].ends_with('s'), "duration: {text}");
        assert!(
            cells[4].starts_with("invoke-fleet-"),
            "RemoteCommand: {text}"
        );
    }
    assert!(
        lines[4].contains("3 targets: 3 succeeded, 0 failed, 0 not started")
            && lines[4].ends_with("exit status 0"),
        "{text}"
    );
    // Only the selected clusters were asked, each once.
    let counts = emulator.run_commands_per_cluster().await;
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["aks1", "fleet-ok-1", "fleet-ok-2"],
        "{counts:?}"
    );
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    let set = the_set(&client, &ns).await;
    assert_eq!(
        set.labels()
            .get("app.kubernetes.io/created-by")
            .map(String::as_str),
        Some("kubectl-invoke")
    );
    assert_eq!(set.status.unwrap().reason.as_deref(), Some("Completed"));
}

/// Some targets fail (a non-zero exit, run command disabled): the run goes on to the end under a
/// larger `--max-errors`, and exits 246 with each target's line; `result` reattaches, live and
/// afterwards, with the same status, and `-o json` lists every outcome and output Secret.
#[tokio::test]
async fn failing_targets_exit_246_and_result_reattaches_with_json() {
    let (client, ns) = setup("clif-fail").await;
    let (_emulator, _operator) = start(&ns);
    let command = command(&ns);
    let out = run(
        &ns,
        &[
            "aks",
            "--subscription",
            SUBSCRIPTION,
            "-g",
            "rg1",
            "-l",
            "env=prod",
            "--max-errors",
            "50%",
            "--max-concurrency",
            "2",
            "--no-wait",
            "--command",
            &command,
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let name = stdout(&out).trim().to_string();
    assert!(name.starts_with("invoke-fleet-"), "{name}");

    // Reattach while it runs: the same lines and status as if the CLI had waited.
    let live = run(&ns, &["result", &name]);
    let text = stdout(&live);
    assert_eq!(
        code(&live),
        i32::from(exit::TARGETS_FAILED),
        "{text}\n{}",
        stderr(&live)
    );
    for ok in ["fleet-ok-1", "fleet-ok-2"] {
        assert_eq!(line_of(&text, ok)[1..3], ["Succeeded", "0"], "{text}");
    }
    let failed = line_of(&text, "fleet-fail");
    assert_eq!(failed[1..3], ["Failed", "3"], "{text}");
    assert!(
        failed.iter().any(|c| c.starts_with("NonZeroExit")),
        "{text}"
    );
    let norun = line_of(&text, "fleet-norun");
    assert_eq!(norun[1..3], ["Failed", "-"], "{text}");
    assert!(
        text.contains("4 targets: 2 succeeded, 2 failed, 0 not started"),
        "{text}"
    );
    assert!(!text.contains("fleet-dev"), "not prod: {text}");

    // Afterwards, named as a set explicitly, in JSON.
    let json = run(&ns, &["result", &format!("rcmdset/{name}"), "-o", "json"]);
    assert_eq!(
        code(&json),
        i32::from(exit::TARGETS_FAILED),
        "{}",
        stderr(&json)
    );
    let doc: Value = serde_json::from_slice(&json.stdout).expect("JSON on stdout");
    assert_eq!(doc["name"], name.as_str());
    assert_eq!(doc["exitStatus"], 246);
    assert_eq!(doc["reason"], "TargetsFailed");
    assert_eq!(
        (doc["succeeded"].as_u64(), doc["failed"].as_u64()),
        (Some(2), Some(2))
    );
    let targets = doc["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 4, "{doc}");
    let rcs = children(&client, &ns).await;
    for t in targets {
        let id = t["target"].as_str().unwrap();
        let rc_name = t["remoteCommand"]
            .as_str()
            .expect("a RemoteCommand per target");
        let rc = rcs
            .iter()
            .find(|rc| rc.metadata.name.as_deref() == Some(rc_name))
            .unwrap_or_else(|| panic!("{rc_name} exists"));
        assert_eq!(rc.spec.target.aks.as_ref().unwrap().resource_id, id);
        if id.ends_with("/fleet-norun") {
            assert_eq!(t["outcome"], "Failed");
            assert_eq!(t["reason"], "RunCommandDisabled");
            continue;
        }
        let secret = t["outputSecret"].as_str().expect("an output Secret");
        assert_eq!(
            rc.status.as_ref().unwrap().output_secret_name.as_deref(),
            Some(secret)
        );
        let output = support::rcmd::output(&client, &ns, rc).await;
        assert_eq!(output, format!("fleet {ns}\n"));
        let want = if id.ends_with("/fleet-fail") { 3 } else { 0 };
        assert_eq!(t["exitCode"], want, "{t}");
    }
    // A target's output through its RemoteCommand, as the hint on stderr says.
    let fail = targets
        .iter()
        .find(|t| t["target"].as_str().unwrap().ends_with("/fleet-fail"))
        .unwrap();
    let one = run(&ns, &["result", fail["remoteCommand"].as_str().unwrap()]);
    assert_eq!(code(&one), 3);
    assert_eq!(stdout(&one), format!("fleet {ns}\n"));
}

/// Past `--max-errors` (default 0) nothing new is launched: the first target fails, the others
/// are `NotStarted` and were never sent; exit 246.
#[tokio::test]
async fn past_max_errors_the_rest_are_not_started() {
    let (_client, ns) = setup("clif-stop").await;
    let (emulator, _operator) = start(&ns);
    let command = command(&ns);
    let out = run(
        &ns,
        &[
            "aks",
            "--id",
            &aks_id("fleet-fail"),
            "--id",
            &aks_id("fleet-ok-1"),
            "--id",
            &aks_id("fleet-ok-2"),
            "--max-concurrency",
            "1",
            "--command",
            &command,
        ],
    );
    let text = stdout(&out);
    assert_eq!(
        code(&out),
        i32::from(exit::TARGETS_FAILED),
        "{text}\n{}",
        stderr(&out)
    );
    assert_eq!(
        line_of(&text, "fleet-fail")[1..3],
        ["Failed", "3"],
        "{text}"
    );
    for never in ["fleet-ok-1", "fleet-ok-2"] {
        let cells = line_of(&text, never);
        assert_eq!(cells[1..5], ["NotStarted", "-", "-", "-"], "{text}");
        assert!(cells[5].starts_with("MaxErrorsExceeded"), "{text}");
    }
    assert!(
        text.contains("3 targets: 0 succeeded, 1 failed, 2 not started (MaxErrorsExceeded)"),
        "{text}"
    );
    assert_eq!(emulator.dispatches(&command).await, 1);
}

/// A set held before it launched anything exits 241 (refused, never ran); a fleet flag the CLI
/// cannot honour fails before anything is created (240).
#[tokio::test]
async fn a_fleet_refused_before_any_launch_exits_241() {
    let (client, ns) = setup("clif-refused").await;
    let (emulator, _operator) = start(&ns);
    let command = command(&ns);
    let out = run(
        &ns,
        &["aks", "--id", "/not/a/cluster/id", "--command", &command],
    );
    let err = stderr(&out);
    assert_eq!(
        code(&out),
        i32::from(exit::REFUSED),
        "{}\n{err}",
        stdout(&out)
    );
    assert!(err.contains("InvalidSpec"), "{err}");
    assert!(children(&client, &ns).await.is_empty());
    assert_eq!(emulator.dispatches(&command).await, 0);

    for args in [
        &[
            "aks",
            "--id",
            &aks_id("fleet-ok-1"),
            "--ttl",
            "1h",
            "-c",
            "true",
        ][..],
        &["aks", "--subscription", SUBSCRIPTION, "-c", "true"],
        &[
            "aks",
            "--subscription",
            SUBSCRIPTION,
            "--selector",
            "",
            "-c",
            "true",
        ],
        &[
            "aks",
            "--subscription",
            SUBSCRIPTION,
            "--selector",
            "env in prod",
            "-c",
            "true",
        ],
    ] {
        let out = run(&ns, args);
        assert_eq!(
            code(&out),
            i32::from(exit::CLI_ERROR),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        Api::<RemoteCommandSet>::namespaced(client, &ns)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1,
        "only the first command created a set"
    );
}

/// With no operator serving the namespace, the CLI withdraws the set it created and exits 245.
#[tokio::test]
async fn with_no_operator_the_fleet_run_is_withdrawn() {
    let (client, ns) = setup("clif-noop").await;
    let out = run(
        &ns,
        &["aks", "--id", &aks_id("fleet-ok-1"), "-c", "echo nobody"],
    );
    let err = stderr(&out);
    assert_eq!(code(&out), i32::from(exit::NO_OPERATOR), "{err}");
    assert!(err.contains("withdrawn"), "{err}");
    let left = Api::<RemoteCommandSet>::namespaced(client, &ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert!(left.items.is_empty(), "a withdrawn fleet run is gone");
}
