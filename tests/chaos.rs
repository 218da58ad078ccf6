//! Chaos: the operator SIGKILLed at random moments, the API server restarted mid-run, ARM throttling
//! and failing often. Nothing may run twice and everything must reach a terminal phase.
//!
//! `make test` runs these small (`KUBEINVOKE_CHAOS_COMMANDS` unset: a few dozen commands);
//! `make chaos` (hack/chaos.sh) runs them with 200 commands.

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams};
use kubeinvoke::api::RemoteCommand;
use serde_json::json;
use support::emulator::{Emulator, world};
use support::operator::Operator;
use support::rcmd::{self, aks, create, outcome, setup};
use support::{Cluster, wait_until};

/// The tests share the API server, and one of them restarts it: they run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CHAOS_CLUSTER: &str = "          - {name: aks-chaos, commandDuration: 1}";

fn commands(smoke: usize) -> usize {
    std::env::var("KUBEINVOKE_CHAOS_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(smoke)
}

/// A small xorshift generator; the seed is printed so a failing run can be replayed
/// (`KUBEINVOKE_CHAOS_SEED`).
struct Rng(u64);

impl Rng {
    fn seeded(test: &str) -> Rng {
        let seed = std::env::var("KUBEINVOKE_CHAOS_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("clock")
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{test}: KUBEINVOKE_CHAOS_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn all_terminal(api: &Api<RemoteCommand>, n: usize) -> Option<Vec<RemoteCommand>> {
    let list = api.list(&ListParams::default()).await.ok()?;
    let done = list
        .items
        .iter()
        .filter(|rc| {
            rc.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p.is_terminal())
        })
        .count();
    (list.items.len() == n && done == n).then_some(list.items)
}

/// Every run either completed, or was cut between dispatch and recording ARM's answer; none ran twice.
async fn assert_at_most_once(
    emulator: &Emulator,
    items: &[RemoteCommand],
) -> BTreeMap<String, usize> {
    let counters = emulator.counters().await;
    let mut outcomes = BTreeMap::new();
    for rc in items {
        let (phase, reason) = outcome(rc);
        let dispatches = counters["dispatches"][&rc.spec.command]
            .as_u64()
            .unwrap_or(0);
        assert!(
            dispatches <= 1,
            "{:?} `{}` was dispatched {dispatches} times",
            rc.metadata.name,
            rc.spec.command
        );
        match (phase.as_str(), reason.as_str()) {
            ("Succeeded", "Completed") => assert_eq!(
                dispatches, 1,
                "{:?} completed without a dispatch",
                rc.metadata.name
            ),
            ("Failed", "DispatchInterrupted") => {}
            other => panic!("{:?} ended as {other:?}: {:?}", rc.metadata.name, rc.status),
        }
        *outcomes.entry(format!("{phase}/{reason}")).or_default() += 1;
    }
    outcomes
}

#[tokio::test]
async fn sigkill_at_random_moments_never_dispatches_twice() {
    let _one = ONE_AT_A_TIME.lock().await;
    let n = commands(20);
    let mut rng = Rng::seeded("sigkill_at_random_moments_never_dispatches_twice");
    let (client, ns) = setup("chaos-kill").await;
    // ARM holds each runCommand answer for a while after accepting it, so kills land between the
    // dispatch and the recorded commandId as well as before and after.
    let emulator = Emulator::start(
        &world(CHAOS_CLUSTER, ""),
        &[
            "--fault-ops",
            "aks.runCommand",
            "--response-delay-ms",
            "300",
        ],
    );
    let mut operator = Operator::start(&emulator, &ns, &[]);
    let api = Api::<RemoteCommand>::namespaced(client.clone(), &ns);

    // Commands arrive in waves while the operator is killed every 0.15-1.05 s.
    let started = Instant::now();
    let timeout = Duration::from_secs(60 + n as u64);
    let (mut created, mut kills) = (0, 0);
    let max_kills = (n / 3).clamp(6, 40);
    let items = loop {
        let wave = (n / 10).max(2).min(n - created);
        for i in created..created + wave {
            create(
                &client,
                &ns,
                &format!("chaos-{i:03}"),
                aks("aks-chaos", &format!("echo chaos-{i}")),
            )
            .await;
        }
        created += wave;
        tokio::time::sleep(Duration::from_millis(150 + rng.below(900))).await;
        if kills < max_kills {
            operator.restart();
            kills += 1;
        } else if let Some(items) = all_terminal(&api, n).await {
            break items;
        }
        assert!(
            started.elapsed() < timeout,
            "not every RemoteCommand reached a terminal phase within {timeout:?} ({kills} kills)"
        );
    };
    let outcomes = assert_at_most_once(&emulator, &items).await;
    eprintln!("{n} commands, {kills} SIGKILLs: {outcomes:?}");
    assert!(
        outcomes.get("Succeeded/Completed").is_some_and(|c| *c > 0),
        "nothing completed: {outcomes:?}"
    );
}

/// The Lease's current holder, if any.
async fn lease_holder(client: &kube::Client, ns: &str) -> Option<String> {
    use k8s_openapi::api::coordination::v1::Lease;
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt("kubeinvoke")
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// The leader-election identity an operator logged when it became the leader.
fn leader_identity(operator: &Operator) -> Option<String> {
    operator
        .logs()
        .lines()
        .filter(|l| l.contains("became the leader"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|e| e["identity"].as_str().map(str::to_string))
}

/// Split brain: the leader is frozen (SIGSTOP) in the middle of dispatching, past its lease, so the
/// standby takes over; then it wakes up (SIGCONT) still believing for a moment that it leads, with
/// dispatches in flight. Its fenced intent writes and its expired tenure must stop every one of
/// them: no command is sent twice, and every run ends.
#[tokio::test]
async fn frozen_leader_never_dispatches_after_the_standby_took_over() {
    let _one = ONE_AT_A_TIME.lock().await;
    let n = commands(30);
    let (client, ns) = setup("chaos-freeze").await;
    // A small write budget spreads the dispatches over many seconds, so the freeze lands while
    // the leader has dispatches waiting for budget, in flight and recorded.
    let emulator = Emulator::start(
        &world(CHAOS_CLUSTER, ""),
        &["--write-burst", "5", "--write-rate", "3"],
    );
    // The operator's own budget is smaller still: most dispatches wait in it, before their intent
    // is written, when the freeze comes — the ones a resumed leader must not send.
    let election = [
        "--arm-write-burst",
        "4",
        "--arm-write-rate",
        "2",
        "--leader-elect",
        "--leader-election-namespace",
        &ns,
        "--leader-election-lease-seconds",
        "6",
    ];
    let first = Operator::start(&emulator, &ns, &election);
    let leader_up = wait_until(Duration::from_secs(30), "a leader", || async {
        leader_identity(&first)
    })
    .await;
    let second = Operator::start(&emulator, &ns, &election);
    for i in 0..n {
        create(
            &client,
            &ns,
            &format!("freeze-{i:03}"),
            aks("aks-chaos", &format!("echo freeze-{i}")),
        )
        .await;
    }
    support::emulator::wait_counters(&emulator, "the first dispatches", |c| {
        c["dispatches"].as_object().is_some_and(|d| d.len() >= 3)
    })
    .await;
    first.signal("STOP");
    let holder = wait_until(
        Duration::from_secs(60),
        "the standby to take the Lease over from the frozen leader",
        || async { lease_holder(&client, &ns).await.filter(|h| *h != leader_up) },
    )
    .await;
    let dispatched_while_frozen = emulator.counters().await["dispatches"]
        .as_object()
        .map(|d| d.len())
        .unwrap_or(0);
    // The freeze must have come mid-dispatch, or the test proves nothing: commands were left
    // for the standby, and the frozen leader had reconciles waiting to send them.
    assert!(
        dispatched_while_frozen < n,
        "every command was dispatched before the freeze ({dispatched_while_frozen} of {n})"
    );
    first.signal("CONT");
    let api = Api::<RemoteCommand>::namespaced(client.clone(), &ns);
    let items = wait_until(
        Duration::from_secs(120 + n as u64),
        "every RemoteCommand to reach a terminal phase after the split brain",
        || all_terminal(&api, n),
    )
    .await;
    let outcomes = assert_at_most_once(&emulator, &items).await;
    eprintln!(
        "{n} commands; leader {leader_up} frozen, {holder} took over after {dispatched_while_frozen} dispatches: {outcomes:?}"
    );
    assert!(
        second.logs().contains("became the leader"),
        "the standby never led"
    );
    assert!(
        outcomes.get("Succeeded/Completed").is_some_and(|c| *c > 0),
        "nothing completed: {outcomes:?}"
    );
}

/// Stops the local kube-apiserver and starts it again with the same command line, pid file and log.
fn restart_api_server() {
    let argv = stop_api_server();
    start_api_server(&argv);
}

/// Stops the local kube-apiserver (SIGTERM, waits until it is gone); returns its command line.
fn stop_api_server() -> Vec<String> {
    let pid_file = Cluster::get().dir.join("apiserver.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("apiserver.pid");
    let pid = pid.trim();
    let cmdline =
        std::fs::read(format!("/proc/{pid}/cmdline")).expect("kube-apiserver command line");
    let argv: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let status = Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -TERM {pid}");
    let gone = Instant::now() + Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(50));
    }
    argv
}

/// Starts kube-apiserver with `argv` (from [`stop_api_server`]), the same pid file and log.
fn start_api_server(argv: &[String]) {
    let dir = &Cluster::get().dir;
    let log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("apiserver.log"))
        .expect("apiserver.log");
    use std::os::unix::process::CommandExt as _;
    // It outlives this test like the original outlived hack/cluster.sh up; `down` stops it.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(&argv[0])
        .args(&argv[1..])
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start kube-apiserver again");
    // hack/cluster.sh down stops whatever this file names.
    std::fs::write(dir.join("apiserver.pid"), child.id().to_string()).expect("write apiserver.pid");
}

/// An ACI session that finishes while its status cannot be written (the API server is down) keeps
/// its outcome: the output Secret and the status are written once the API server is back, the run
/// neither fails nor runs a second time.
#[tokio::test]
async fn aci_outcome_is_written_after_the_api_server_comes_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (client, ns) = setup("chaos-aci-write").await;
    let emulator = Emulator::start(&world("", ""), &[]);
    let operator = Operator::start(&emulator, &ns, &[]);
    // Long enough for the API server to be stopped while the command still runs.
    create(
        &client,
        &ns,
        "aci-down",
        rcmd::aci_shell("cg1", "sleep 8; echo finished-while-down"),
    )
    .await;
    support::emulator::wait_counters(&emulator, "the exec session", |c| {
        c["execSessions"]["/bin/sh"].as_u64() == Some(1)
    })
    .await;
    let argv = stop_api_server();
    wait_until(
        Duration::from_secs(60),
        "the operator to fail writing the finished session's outcome",
        || async {
            let log = operator.logs();
            (log.contains("could not write the output Secret yet")
                || log.contains("could not record ARM's answer yet"))
            .then_some(())
        },
    )
    .await;
    start_api_server(&argv);
    let rc = rcmd::wait_finished(&Cluster::get().client().await, &ns, "aci-down").await;
    assert_eq!(
        outcome(&rc),
        ("Succeeded".into(), "Completed".into()),
        "{:?}",
        rc.status
    );
    assert_eq!(rc.status.as_ref().unwrap().attempts, Some(1));
    assert_eq!(
        rcmd::output(&client, &ns, &rc).await,
        "finished-while-down\n"
    );
    assert_eq!(
        emulator.counters().await["execSessions"]["/bin/sh"].as_u64(),
        Some(1),
        "one session only"
    );
}

#[tokio::test]
async fn api_server_restart_mid_run_recovers() {
    let _one = ONE_AT_A_TIME.lock().await;
    let n = commands(8);
    let (client, ns) = setup("chaos-apiserver").await;
    let emulator = Emulator::start(
        &world("          - {name: aks-chaos, commandDuration: 3}", ""),
        &[],
    );
    let _operator = Operator::start(&emulator, &ns, &[]);
    for i in 0..n {
        create(
            &client,
            &ns,
            &format!("outage-{i:03}"),
            aks("aks-chaos", &format!("echo outage-{i}")),
        )
        .await;
    }
    support::emulator::wait_counters(&emulator, "the first dispatches", |c| {
        c["dispatches"].as_object().is_some_and(|d| !d.is_empty())
    })
    .await;
    restart_api_server();
    let api = Api::<RemoteCommand>::namespaced(Cluster::get().client().await, &ns);
    let items = wait_until(
        Duration::from_secs(90 + n as u64),
        "every RemoteCommand to finish after the API server restart",
        || all_terminal(&api, n),
    )
    .await;
    let outcomes = assert_at_most_once(&emulator, &items).await;
    assert_eq!(
        outcomes.get("Succeeded/Completed"),
        Some(&n),
        "an API server outage must not fail a run: {outcomes:?}"
    );
}

#[tokio::test]
async fn heavy_throttling_and_server_errors_complete_without_early_retries() {
    let _one = ONE_AT_A_TIME.lock().await;
    let n = commands(8);
    let (client, ns) = setup("chaos-faults").await;
    let emulator = Emulator::start(&world(CHAOS_CLUSTER, ""), &[]);
    // 30% 429 and 5% 5xx on every ARM operation, and Entra ID throttling (AADSTS50196) and
    // outages on token requests. AtLeastOnce: an injected 5xx on the dispatch leaves ARM's answer
    // unknown, so the run is sent again (the emulator never ran it, so it still runs once);
    // AtMostOnce would end it as DispatchInterrupted by design.
    emulator
        .put_faults(
            r#"{"*": {"retryAfter": 1, "throttleRate": 0.3, "error500Rate": 0.025, "error503Rate": 0.025},
                "entra.token": {"retryAfter": 1, "throttleRate": 0.3, "error500Rate": 0, "error503Rate": 0.05}}"#,
        )
        .await;
    let _operator = Operator::start(&emulator, &ns, &[]);
    for i in 0..n {
        let mut spec = aks("aks-chaos", &format!("echo storm-{i}"));
        spec["dispatchPolicy"] = json!("AtLeastOnce");
        create(&client, &ns, &format!("storm-{i:03}"), spec).await;
    }
    let api = Api::<RemoteCommand>::namespaced(client.clone(), &ns);
    let items = wait_until(
        Duration::from_secs(90 + n as u64),
        "every RemoteCommand to finish under heavy throttling",
        || all_terminal(&api, n),
    )
    .await;
    let outcomes = assert_at_most_once(&emulator, &items).await;
    assert_eq!(
        outcomes.get("Succeeded/Completed"),
        Some(&n),
        "{outcomes:?}"
    );
    let counters = emulator.counters().await;
    assert!(
        counters["throttled429"].as_u64().unwrap_or(0) > 0,
        "no 429 was injected: {counters}"
    );
    assert_eq!(
        counters["earlyRequests"].as_u64(),
        Some(0),
        "requests before their Retry-After: {}",
        counters["earlyRequestsByOp"]
    );
}
