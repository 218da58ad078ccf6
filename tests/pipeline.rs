//! `kubectl invoke` as a pipeline runs it, against the operator as users install it (the image on the
//! node, the Helm chart, two replicas with leader election): the exit status a retry policy reads
//! never says "never ran" (241) about a run that reached ARM; with no operator the CLI ends within
//! its documented bound and its run never starts later, while a declarative run still does (unless
//! its `startingDeadlineSeconds` passed); a missing ServiceAccount is awaited by name; and a leader
//! frozen while ARM accepted its commands records ARM's answers when it wakes, so those runs end with
//! ARM's result, each sent once.
//!
//! The scenarios take turns ([`NODE`]): a 2-core node runs one release's pods at a time comfortably.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use kubeinvoke::api::RemoteCommand;
use kubeinvoke::cli::exit;
use serde_json::json;
use tokio::sync::Mutex;

use support::cli::{code, invoke, run, stderr};
use support::emulator::{Emulator, TENANT, aks_id, federated, world};
use support::release::{Installed, SHORT_LEASE_SECONDS, signal};
use support::{rcmd, wait_until};

static NODE: Mutex<()> = Mutex::const_new(());

/// Clusters of these scenarios: one that runs commands at once, one whose results are never found
/// (ARM accepted, the command pod never ran), a stopped one, one that is slow to answer the POST
/// although the command already runs, and one whose commands take ten minutes.
const CLUSTERS: &str = "          - {name: aks-pipe, commandDuration: 0}
          - {name: aks-lost, resultsNotFound: true}
          - {name: aks-stopped, powerState: Stopped}
          - {name: aks-slow-answer, commandDuration: 0, acceptAfterSeconds: 10}
          - {name: aks-long, commandDuration: 600}";

fn aks_args<'a>(cluster: &'a str, command: &'a str) -> Vec<String> {
    ["aks", &aks_id(cluster), "--timeout", "3m", "-c", command]
        .map(str::to_string)
        .to_vec()
}

fn run_aks(ns: &str, cluster: &str, command: &str) -> std::process::Output {
    let args = aks_args(cluster, command);
    run(ns, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[tokio::test]
async fn only_a_run_that_never_reached_arm_exits_as_never_ran() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("pipe-exit").await;
    let emulator = Emulator::start(&world(CLUSTERS, ""), &[]);
    let _op = Installed::install(&admin, &emulator, &ns).await;

    // Ran and failed: the command's own status.
    let out = run_aks(&ns, "aks-pipe", "echo ran; exit 7");
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");

    // Accepted by ARM, its result never found: whether it ran is unknown (243), never 241.
    let out = run_aks(&ns, "aks-lost", "echo lost");
    assert_eq!(code(&out), i32::from(exit::UNKNOWN), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ResultUnavailable"),
        "{}",
        stderr(&out)
    );
    assert_eq!(emulator.dispatches("echo lost").await, 1);

    // Refused before anything was sent: 241 is the truth here, and only here.
    let out = run_aks(&ns, "aks-stopped", "echo stopped");
    assert_eq!(code(&out), i32::from(exit::REFUSED), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("TargetNotRunning"),
        "{}",
        stderr(&out)
    );
    assert_eq!(emulator.dispatches("echo stopped").await, 0);

    // An output Secret that belongs to someone else is found before dispatch, not after the run.
    let foreign: Secret = serde_json::from_value(
        json!({"metadata": {"name": "taken"}, "stringData": {"mine": "yes"}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let mut spec = rcmd::aks("aks-pipe", "echo must-not-run");
    spec["output"] = json!({"secretName": "taken"});
    rcmd::create(&admin, &ns, "taken", spec).await;
    let out = run(&ns, &["result", "taken"]);
    assert_eq!(code(&out), i32::from(exit::REFUSED), "{}", stderr(&out));
    assert!(stderr(&out).contains("SecretConflict"), "{}", stderr(&out));
    assert_eq!(emulator.dispatches("echo must-not-run").await, 0);
}

#[tokio::test]
async fn with_no_operator_the_cli_gives_up_in_time_and_its_run_never_starts() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("pipe-none").await;
    let emulator = Emulator::start(&world(CLUSTERS, ""), &[]);
    // Applied by GitOps while no operator runs: one unbounded (runs when an operator comes, as a
    // Job does), one that may start at most 5 s after it was asked for.
    rcmd::create(
        &admin,
        &ns,
        "declared",
        rcmd::aks("aks-pipe", "echo declared"),
    )
    .await;
    let mut bounded = rcmd::aks("aks-pipe", "echo bounded");
    bounded["startingDeadlineSeconds"] = json!(5);
    rcmd::create(&admin, &ns, "bounded", bounded).await;

    let began = Instant::now();
    let out = run_aks(&ns, "aks-pipe", "echo nobody-served-this");
    let took = began.elapsed();
    assert_eq!(code(&out), i32::from(exit::NO_OPERATOR), "{}", stderr(&out));
    assert!(stderr(&out).contains("withdrawn"), "{}", stderr(&out));
    // docs/cli.md: 30 s without an answer; generous slack for a loaded node, far below --timeout.
    let bound = kubeinvoke::cli::ACK_TIMEOUT + Duration::from_secs(30);
    assert!(took < bound, "the CLI took {took:?} (bound {bound:?})");
    let api = Api::<RemoteCommand>::namespaced(admin.clone(), &ns);
    let mut left: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|rc| rc.name_any())
        .collect();
    left.sort();
    assert_eq!(left, ["bounded", "declared"], "the CLI's run is withdrawn");

    // An operator arrives, long past the bounded run's starting deadline.
    let _op = Installed::install(&admin, &emulator, &ns).await;
    let declared = rcmd::wait_finished(&admin, &ns, "declared").await;
    assert_eq!(
        rcmd::outcome(&declared),
        ("Succeeded".into(), "Completed".into())
    );
    let late = rcmd::wait_finished(&admin, &ns, "bounded").await;
    assert_eq!(
        rcmd::outcome(&late),
        ("Failed".into(), "StartingDeadlineExceeded".into()),
        "{}",
        rcmd::message(&late)
    );
    let out = run(&ns, &["result", "bounded"]);
    assert_eq!(code(&out), i32::from(exit::REFUSED), "{}", stderr(&out));
    assert_eq!(emulator.dispatches("echo declared").await, 1);
    assert_eq!(emulator.dispatches("echo bounded").await, 0);
    assert_eq!(emulator.dispatches("echo nobody-served-this").await, 0);
}

#[tokio::test]
async fn an_answered_run_is_waited_for_at_most_its_timeout_and_the_grace() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("pipe-grace").await;
    let emulator = Emulator::start(&world(CLUSTERS, ""), &[]);
    let op = Installed::install(&admin, &emulator, &ns).await;
    let began = Instant::now();
    let cli = invoke(&ns, &std::env::temp_dir(), &[])
        .args([
            "aks",
            &aks_id("aks-long"),
            "--timeout",
            "15s",
            "-c",
            "echo long",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl-invoke");
    let api = Api::<RemoteCommand>::namespaced(admin.clone(), &ns);
    wait_until(Duration::from_secs(60), "ARM to accept the run", || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let rc = list.items.into_iter().next()?;
        rc.status?.command_id.map(|_| ())
    })
    .await;
    // The operator goes away after it answered: nobody will ever write the verdict.
    let selector = format!("app.kubernetes.io/instance={}", op.release.name);
    support::Cluster::get().kubectl_ok(&[
        "scale",
        "deployment",
        "-n",
        &op.release.namespace,
        "-l",
        &selector,
        "--replicas=0",
    ]);
    // docs/cli.md: at most timeoutSeconds (15 s) + 60 s, then 244 and the run is left as it is.
    let cli = std::sync::Mutex::new(cli);
    wait_until(
        Duration::from_secs(15 + 60 + 60),
        "the CLI to give up after the run's timeout and the grace",
        || async { cli.lock().unwrap().try_wait().unwrap().map(|_| ()) },
    )
    .await;
    let took = began.elapsed();
    let out = cli.into_inner().unwrap().wait_with_output().unwrap();
    assert_eq!(code(&out), i32::from(exit::DEADLINE), "{}", stderr(&out));
    assert!(
        // (less a second or two: timestamps in status have whole seconds)
        took >= Duration::from_secs(15 + 60 - 2),
        "the CLI gave up after {took:?}, before the run's timeout and the grace: {}",
        stderr(&out)
    );
    let left = api.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(left.len(), 1, "a served run is never withdrawn");
}

#[tokio::test]
async fn a_missing_or_unlent_service_account_is_awaited_by_name() {
    const CLIENT: &str = "fed0fed0-0000-0000-0000-0000000000fe";
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("pipe-sa").await;
    let emulator = Emulator::start(
        &federated(&world(CLUSTERS, ""), &[(CLIENT, &ns, "deployer")]),
        &[],
    );
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "federated"},
        "stringData": {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CLIENT, "AZURE_SERVICE_ACCOUNT": "deployer"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let _op = Installed::install(&admin, &emulator, &ns).await;

    let mut args = aks_args("aks-pipe", "echo federated");
    args.extend(["--credential".into(), "federated".into()]);
    let mut cli = invoke(&ns, &std::env::temp_dir(), &[])
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubectl-invoke");
    let api = Api::<RemoteCommand>::namespaced(admin.clone(), &ns);
    let waiting = wait_until(
        Duration::from_secs(60),
        "the run to wait for its ServiceAccount",
        || async {
            let list = api.list(&ListParams::default()).await.ok()?;
            let rc = list.items.into_iter().next()?;
            (rcmd::outcome(&rc) == ("Pending".into(), "CredentialNotFound".into())).then_some(rc)
        },
    )
    .await;
    let message = rcmd::message(&waiting);
    assert!(
        message.contains("ServiceAccount") && message.contains("deployer"),
        "{message}"
    );
    assert!(
        rcmd::events(&ns).contains("CredentialNotFound"),
        "no Warning Event: {}",
        rcmd::events(&ns)
    );
    assert!(
        cli.try_wait().unwrap().is_none(),
        "an awaited reference is not a verdict: the CLI must still wait"
    );

    // The ServiceAccount appears (GitOps applies in no fixed order), but its owner has not lent it
    // to this client id: still awaited, and the message says what is missing.
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "deployer"}})).unwrap();
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), &ns);
    accounts.create(&PostParams::default(), &sa).await.unwrap();
    let name = waiting.name_any();
    rcmd::wait_for(&admin, &ns, &name, "the run to wait for the opt-in", |rc| {
        rcmd::message(rc).contains("has not opted in")
    })
    .await;
    assert!(cli.try_wait().unwrap().is_none(), "still waiting");
    assert_eq!(emulator.dispatches("echo federated").await, 0);
    // The owner opts in: the run goes on by itself.
    accounts
        .patch(
            "deployer",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                json!({"metadata": {"annotations": {"azure.workload.identity/client-id": CLIENT}}}),
            ),
        )
        .await
        .unwrap();
    let cli = std::sync::Mutex::new(cli);
    wait_until(
        Duration::from_secs(120),
        "the CLI to end once the ServiceAccount exists",
        || async { cli.lock().unwrap().try_wait().unwrap().map(|_| ()) },
    )
    .await;
    let cli = cli.into_inner().unwrap();
    let out = cli.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "federated\n");
}

#[tokio::test]
async fn a_frozen_leader_records_arms_answers_when_it_wakes() {
    let _turn = NODE.lock().await;
    let (admin, ns) = rcmd::setup("pipe-late").await;
    let emulator = Emulator::start(&world(CLUSTERS, ""), &[]);
    let (op, pod, pid) = Installed::install_for_split_brain(&admin, &emulator, &ns).await;
    let leader = pod.name_any();

    let commands: Vec<String> = (0..3).map(|i| format!("echo late-{i}")).collect();
    let mut names = Vec::new();
    for command in &commands {
        let mut args = aks_args("aks-slow-answer", command);
        args.push("--no-wait".into());
        let out = run(&ns, &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        names.push(String::from_utf8(out.stdout).unwrap().trim().to_string());
    }
    // ARM has every command running; its 202s are 10 s away: freeze the leader now.
    wait_until(
        Duration::from_secs(60),
        "ARM to accept the 3 commands",
        || async {
            let mut n = 0;
            for c in &commands {
                n += emulator.dispatches(c).await;
            }
            (n == 3).then_some(())
        },
    )
    .await;
    signal(&pid, "STOP");
    let api = Api::<RemoteCommand>::namespaced(admin.clone(), &ns);
    let declared = wait_until(
        Duration::from_secs(SHORT_LEASE_SECONDS * 5),
        "the standby to declare the frozen leader's runs DispatchInterrupted",
        || all_with(&api, &names, ("Failed", "DispatchInterrupted")),
    )
    .await;
    let holder = op.holder().await.unwrap_or_default();
    signal(&pid, "CONT");
    assert_ne!(holder, leader, "the standby leads now");
    assert!(
        declared
            .iter()
            .all(|rc| { rc.status.as_ref().is_some_and(|s| s.command_id.is_none()) })
    );

    // The woken process holds ARM's command ids: it records them, the leader follows them.
    let ended = wait_until(
        Duration::from_secs(120),
        "every run to end with ARM's result",
        || all_with(&api, &names, ("Succeeded", "Completed")),
    )
    .await;
    for (command, rc) in commands.iter().zip(&ended) {
        assert_eq!(emulator.dispatches(command).await, 1, "{command}");
        let out = run(&ns, &["result", &rc.name_any()]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{}\n", command.trim_start_matches("echo "))
        );
    }
    let events = rcmd::events(&ns);
    assert!(events.contains("LateAnswer"), "{events}\n{}", op.logs());
}

/// The runs `names`, once every one shows `(phase, reason)`.
async fn all_with(
    api: &Api<RemoteCommand>,
    names: &[String],
    want: (&str, &str),
) -> Option<Vec<RemoteCommand>> {
    let mut found = Vec::new();
    for name in names {
        let rc = api.get(name).await.ok()?;
        if rcmd::outcome(&rc) != (want.0.to_string(), want.1.to_string()) {
            return None;
        }
        found.push(rc);
    }
    Some(found)
}
